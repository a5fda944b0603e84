"""Training past one machine (slow): MirroredStrategy over two logical CPU devices, two worker processes
on localhost ports training together (MultiWorkerMirroredStrategy from TF_CONFIG), and workers that are
stopped and restarted resuming where they stopped.

TensorFlow fixes a process's devices and collective ops when it starts, so every training here runs in
fresh processes: a small script this file writes (the shared training steps: `start_training`,
`fit_run`, `save_inference_model`, `finish_run`, on a tiny model and unshuffled data) or the real
`sensorium train` command. Run with `python -m pytest -m slow tests/pipelines/test_distributed.py`.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sensorium.apps import main as sensorium_app
from sensorium.pipelines.common.rundir import RunDir
from sensorium.runtime.errors import ModelError

pytestmark = pytest.mark.slow

EPOCHS = 4
TOLERANCE = 1e-5
TIMEOUT = 240  # seconds for one training process (2 CPUs, shared)

# Training script: `fit.py MODE RUN_DIR WEIGHTS.npz [--interrupt-after N]`; MODE is default, mirrored
# (two logical CPU devices) or multiworker (TF_CONFIG). It trains a seeded two-layer network on 32 fixed
# examples in global batches of 8 (no shuffling) with the pipeline's own training steps and saves the
# final weights. With --interrupt-after N the first `fit_run` stops after epoch N has been checkpointed;
# the script then builds a fresh model with other initial weights and calls `fit_run` again with the run's
# train state, as a restarted process would.
FIT_SCRIPT = r'''
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

mode, out, weights_path = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
interrupt_after = int(sys.argv[5]) if len(sys.argv) > 5 and sys.argv[4] == "--interrupt-after" else None
logging.basicConfig(level=logging.INFO, format="%(message)s")
import tensorflow as tf

if mode == "mirrored":
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras
import numpy as np

from sensorium.pipelines.common import callbacks
from sensorium.pipelines.common.callbacks import read_train_state
from sensorium.pipelines.common.optimizers import make_optimizer
from sensorium.pipelines.common.rundir import RunDir
from sensorium.pipelines.common.training import (TrainSettings, finish_run, fit_run, run_summary,
                                                 save_inference_model, start_training)


@dataclass
class Config:
    seed: int = 7
    train: TrainSettings = field(default_factory=TrainSettings)


config = Config(train=TrainSettings(epochs=EPOCHS, batch_size=8, learning_rate=0.02, schedule="constant",
                                    warmup_epochs=0, early_stopping_patience=0, strategy=mode,
                                    mixed_precision="off"))
run = RunDir.create(out, "probe")
policy, strategy = start_training(run, config)

rng = np.random.default_rng(0)
x = rng.normal(size=(48, 4)).astype("float32")
y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype("int64")
train_ds = tf.data.Dataset.from_tensor_slices((x[:32], y[:32])).batch(8)
val_ds = tf.data.Dataset.from_tensor_slices((x[32:], y[32:])).batch(8)


def build(seed=0):
    return keras.Sequential([
        keras.Input((4,)),
        keras.layers.Dense(8, activation="relu", kernel_initializer=keras.initializers.GlorotUniform(seed + 1)),
        keras.layers.Dense(2, activation="softmax", kernel_initializer=keras.initializers.GlorotUniform(seed + 2)),
    ])


def compiled(seed=0):
    with strategy.scope():
        model = build(seed)
        model.compile(optimizer=make_optimizer(config.train, 4), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
    return model


model = compiled()
if interrupt_after is not None:
    original = callbacks.Progress.on_epoch_end

    def stop(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch + 1 == interrupt_after:
            raise RuntimeError("interrupted")

    callbacks.Progress.on_epoch_end = stop
    try:
        fit_run(run, model, train_ds, val_ds, config.train, 4, None)
        raise SystemExit("the interruption did not happen")
    except RuntimeError as exc:
        assert str(exc) == "interrupted", exc
    callbacks.Progress.on_epoch_end = original
    backup = callbacks.backup_epoch(run.path / "checkpoints" / callbacks.BACKUP)
    print(f"backup epoch after the interruption: {backup}", flush=True)
    model = compiled(seed=100)  # a restarted process: other initial weights, no optimizer state
run_state = fit_run(run, model, train_ds, val_ds, config.train, 4, read_train_state(run.path / "checkpoints"))
np.savez(weights_path, *[w.numpy() for w in model.weights])
save_inference_model(run, model, build)
summary = run_summary(run_state, config.train, policy, strategy)
finish_run(run, history=run_state.history, summary=summary, data_spec="probe", evaluate_on=None,
           evaluate=lambda spec: {}, write_card=lambda metrics: run.write_text("model_card.md", "probe\n"))
print("history " + " ".join(f"{k}={len(v)}" for k, v in sorted(run_state.history.items())), flush=True)
'''.replace("EPOCHS", str(EPOCHS))

# `python -c` prelude of the CLI runs: two logical CPU devices (MIRRORED) or a hard stop right after a given
# epoch's checkpoints and backup were written (STOP_AFTER_EPOCH), then `sensorium` itself.
CLI_PRELUDE = r'''
import os, sys, time
import tensorflow as tf
if os.environ.get("LOGICAL_CPUS"):
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
if os.environ.get("STOP_AFTER_EPOCH"):
    from sensorium.pipelines.common import callbacks
    original = callbacks.EpochBackup.on_epoch_end
    def stop(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch + 1 == int(os.environ["STOP_AFTER_EPOCH"]):
            time.sleep(1)  # the other workers finish this epoch's collectives
            os._exit(3)
    callbacks.EpochBackup.on_epoch_end = stop
from sensorium.apps.main import main
sys.exit(main(sys.argv[1:]))
'''

TINY_IMAGE = ["--image-size", "16", "--widths", "4,8", "--batch-size", "8", "--seed", "1", "--patience", "0"]


# === Processes ===
def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env.update(TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow", TF_ENABLE_ONEDNN_OPTS="0",
               CUDA_VISIBLE_DEVICES="-1", **extra)
    return env


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("localhost", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _tf_config(ports: list[int], index: int) -> str:
    return json.dumps({"cluster": {"worker": [f"localhost:{p}" for p in ports]},
                       "task": {"type": "worker", "index": index}})


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "w") as fh:  # the child keeps its own copy of the file descriptor
        return subprocess.Popen([sys.executable, *args], env=env, stdout=fh, stderr=subprocess.STDOUT,
                                cwd=log.parent)


def _wait_all(procs: list[subprocess.Popen], logs: list[Path], timeout: float = TIMEOUT) -> list[int]:
    """Wait for every process (killing all of them when one outlives `timeout`); their exit codes."""
    deadline = time.monotonic() + timeout
    try:
        for p in procs:
            p.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pytest.fail("timed out:\n" + "\n".join(_tail(log) for log in logs))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return [p.returncode for p in procs]


def _tail(log: Path, lines: int = 25) -> str:
    text = log.read_text(errors="replace").splitlines() if log.is_file() else []
    return f"--- {log.name}\n" + "\n".join(text[-lines:])


def _run(args: list[str], env: dict[str, str], log: Path) -> str:
    code = _wait_all([_start(args, env, log)], [log])[0]
    assert code == 0, _tail(log)
    return log.read_text(errors="replace")


def _run_workers(argv: list[list[str]], log_dir: Path, name: str, **env: str) -> list[int]:
    """Start one process per argument list as the workers of one TF_CONFIG cluster; their exit codes."""
    ports = _free_ports(len(argv))
    logs = [log_dir / f"{name}{i}.log" for i in range(len(argv))]
    procs = [_start(args, _env(TF_CONFIG=_tf_config(ports, i), **env), log) for i, (args, log) in
             enumerate(zip(argv, logs))]
    codes = _wait_all(procs, logs)
    return codes


def _weights(path: Path) -> list[np.ndarray]:
    with np.load(path) as data:
        return [data[k] for k in sorted(data.files, key=lambda k: int(k.split("_")[1]))]


def _assert_same_weights(a: list[np.ndarray], b: list[np.ndarray], atol: float = TOLERANCE) -> None:
    assert len(a) == len(b) and len(a) > 0
    for wa, wb in zip(a, b):
        np.testing.assert_allclose(wa, wb, atol=atol, rtol=0)


def _manifest(run: Path) -> dict:
    return json.loads((run / "sensorium.json").read_text())


def _history_rows(run: Path) -> list[int]:
    return [int(line.split(",")[0]) for line in (run / "history.csv").read_text().splitlines()[1:]]


# === Fixtures ===
@pytest.fixture(scope="module")
def fit_script(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("scripts") / "fit.py"
    path.write_text(FIT_SCRIPT)
    return path


@pytest.fixture(scope="module")
def reference(fit_script, tmp_path_factory) -> list[np.ndarray]:
    """The weights one process reaches with the default strategy on the same global batches."""
    work = tmp_path_factory.mktemp("reference")
    _run([str(fit_script), "default", str(work / "run"), str(work / "w.npz")], _env(), work / "default.log")
    assert _manifest(work / "run")["summary"]["replicas"] == 1
    return _weights(work / "w.npz")


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """A folder dataset: two classes x 16 PNGs of 16x16 shapes."""
    from PIL import Image

    root = tmp_path_factory.mktemp("shapes")
    rng = np.random.default_rng(0)
    for cls in ("bar", "square"):
        (root / cls).mkdir()
        for i in range(16):
            img = rng.integers(0, 40, (16, 16, 3), dtype=np.uint8)
            if cls == "square":
                img[4:12, 4:12] = 220
            else:
                img[7:9, 1:15] = 220
            Image.fromarray(img).save(root / cls / f"{cls}{i:02d}.png")
    return root


# === Tests ===
def test_multiworker_needs_a_valid_tf_config(images, tmp_path, monkeypatch, capsys):
    """A missing or malformed TF_CONFIG is one usage line (exit 2), before any run directory is made."""
    for value, expected in ((None, "needs the TF_CONFIG environment variable"),
                            ("{not json", "TF_CONFIG is not valid JSON"),
                            ('{"cluster": {"worker": ["localhost"]}, "task": {"type": "worker", "index": 0}}',
                             "host:port"),
                            ('{"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", "index": 3}}',
                             "out of range")):
        if value is None:
            monkeypatch.delenv("TF_CONFIG", raising=False)
        else:
            monkeypatch.setenv("TF_CONFIG", value)
        out = tmp_path / "run"
        code = sensorium_app.main(["train", "image", "--data", str(images), "--out", str(out), "--strategy",
                                   "multiworker", *TINY_IMAGE])
        err = capsys.readouterr().err
        assert code == 2 and expected in err and err.strip().count("\n") == 0, err
        assert not out.exists()


def test_mirrored_over_two_logical_cpus_matches_one_device(fit_script, reference, images, tmp_path):
    """MirroredStrategy over two logical CPU devices reaches the default strategy's weights on the same
    global batches; `sensorium train --strategy mirrored` there trains with 2 replicas."""
    _run([str(fit_script), "mirrored", str(tmp_path / "run"), str(tmp_path / "w.npz")], _env(),
         tmp_path / "mirrored.log")
    assert _manifest(tmp_path / "run")["summary"]["replicas"] == 2
    _assert_same_weights(_weights(tmp_path / "w.npz"), reference)
    assert _history_rows(tmp_path / "run") == list(range(1, EPOCHS + 1))

    out = tmp_path / "cli"
    log = _run(["-c", CLI_PRELUDE, "train", "image", "--data", str(images), "--out", str(out), "--epochs", "1",
                "--strategy", "mirrored", *TINY_IMAGE], _env(LOGICAL_CPUS="2"), tmp_path / "cli.log")
    manifest = _manifest(out)
    assert manifest["status"] == "complete" and manifest["summary"]["replicas"] == 2, log
    assert (out / "model.keras").is_file() and (out / "metrics.json").is_file()


def test_two_workers_train_together_like_one_process(fit_script, reference, tmp_path):
    """Two workers on localhost ports reach the weights of one process trained on the same global
    batches; only the chief (worker 0) keeps a run directory."""
    runs = [tmp_path / "chief", tmp_path / "worker1"]
    codes = _run_workers([[str(fit_script), "multiworker", str(run), str(tmp_path / f"w{i}.npz")]
                          for i, run in enumerate(runs)], tmp_path, "worker")
    assert codes == [0, 0], "\n".join(_tail(tmp_path / f"worker{i}.log") for i in range(2))
    chief, worker = (_weights(tmp_path / f"w{i}.npz") for i in range(2))
    _assert_same_weights(chief, worker, atol=0)
    _assert_same_weights(chief, reference)

    summary = _manifest(runs[0])["summary"]
    assert summary["replicas"] == 2 and summary["workers"] == 2
    assert "worker" not in _manifest(runs[0])
    for name in ("model.keras", "config.json", "history.csv", "model_card.md", "checkpoints/last.keras",
                 "plots/training_curves.png"):
        assert (runs[0] / name).is_file(), name
    assert _history_rows(runs[0]) == list(range(1, EPOCHS + 1))
    assert not (runs[0] / "checkpoints" / "backup").exists()  # BackupAndRestore removes it when fit ends
    # the other worker's directory: cleared down to its manifest (complete, naming the worker) and config
    assert sorted(p.name for p in runs[1].iterdir()) == ["config.json", "sensorium.json"]
    manifest = _manifest(runs[1])
    assert manifest["status"] == "complete" and manifest["worker"] == {"task": "worker:1", "workers": 2}
    with pytest.raises(ModelError, match="chief's run directory"):
        RunDir(runs[1]).require_complete()


def test_two_workers_run_the_train_command(images, tmp_path):
    """`sensorium train image --strategy multiworker` on two workers, each with its own --out: the chief's
    is a complete run; the other's keeps only its manifest and config.json."""
    outs = [tmp_path / "out0", tmp_path / "out1"]
    codes = _run_workers([["-m", "sensorium.apps.main", "train", "image", "--data", str(images), "--out", str(out),
                           "--epochs", "2", "--strategy", "multiworker", *TINY_IMAGE] for out in outs],
                         tmp_path, "cli")
    assert codes == [0, 0], "\n".join(_tail(tmp_path / f"cli{i}.log") for i in range(2))
    manifest = _manifest(outs[0])
    assert manifest["status"] == "complete" and manifest["summary"]["workers"] == 2
    assert manifest["summary"]["replicas"] == 2 and manifest["summary"]["epochs"] == 2
    for name in ("model.keras", "metrics.json", "model_card.md", "labels.txt", "history.csv"):
        assert (outs[0] / name).is_file(), name
    RunDir(outs[0]).require_complete("image")
    assert sorted(p.name for p in outs[1].iterdir()) == ["config.json", "sensorium.json"]
    assert _manifest(outs[1])["worker"]["task"] == "worker:1"
    # both trained the same model: the same per-epoch logs
    logs = [(tmp_path / f"cli{i}.log").read_text() for i in range(2)]
    epochs = [[line.split("epoch ", 1)[1] for line in log.splitlines() if "epoch 2/2" in line] for log in logs]
    assert epochs[0] and epochs[0] == epochs[1]


def test_backup_and_restore_resumes_a_restarted_fit(fit_script, reference, tmp_path):
    """A fit stopped after epoch 2, then run again by a fresh model (other initial weights, as in a restarted
    process) continues from epoch 2 with the backed-up weights and optimizer state: the final weights are
    those of an uninterrupted run and each epoch is in the history once.

    Single process: MultiWorkerMirroredStrategy with a one-worker TF_CONFIG (the same callbacks as with
    several workers); the multi-process restart is in `test_stopped_workers_resume_with_the_train_command`."""
    run = tmp_path / "run"
    env = _env(TF_CONFIG=_tf_config(_free_ports(1), 0))
    log = _run([str(fit_script), "multiworker", str(run), str(tmp_path / "w.npz"), "--interrupt-after", "2"], env,
               tmp_path / "restart.log")
    assert "backup epoch after the interruption: 2" in log
    assert "restored the backup of epoch 2" in log
    assert f"history accuracy={EPOCHS} loss={EPOCHS} val_accuracy={EPOCHS} val_loss={EPOCHS}" in log
    assert _history_rows(run) == list(range(1, EPOCHS + 1))
    _assert_same_weights(_weights(tmp_path / "w.npz"), reference)
    assert not (run / "checkpoints" / "backup").exists()


def test_stopped_workers_resume_with_the_train_command(images, tmp_path):
    """Two workers of `sensorium train --strategy multiworker`: worker 1 dies right after epoch 2's
    checkpoints; worker 0 then fails in epoch 3 with a one-line error saying how to go on. Both restarted
    with --resume continue from epoch 2: the run completes with each epoch once in its history."""
    outs = [tmp_path / "out0", tmp_path / "out1"]
    argv = [["-c", CLI_PRELUDE, "train", "image", "--data", str(images), "--out", str(out), "--epochs", "4",
             "--strategy", "multiworker", *TINY_IMAGE] for out in outs]
    ports = _free_ports(2)
    logs = [tmp_path / f"first{i}.log" for i in range(2)]
    procs = [_start(argv[0], _env(TF_CONFIG=_tf_config(ports, 0)), logs[0]),
             _start(argv[1], _env(TF_CONFIG=_tf_config(ports, 1), STOP_AFTER_EPOCH="2"), logs[1])]
    try:
        assert procs[1].wait(timeout=TIMEOUT) == 3, _tail(logs[1])
        assert procs[0].wait(timeout=120) == 1, _tail(logs[0])  # the cluster notices the lost heartbeats
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    errors = [line for line in logs[0].read_text().splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "lost a worker" in errors[0] and "--resume" in errors[0], _tail(logs[0])
    assert [_manifest(out)["status"] for out in outs] == ["failed", "training"]
    for out in outs:
        assert json.loads((out / "checkpoints" / "state.json").read_text())["epoch"] == 2
        assert json.loads((out / "checkpoints" / "backup" / "training_metadata.json").read_text())["epoch"] == 2

    codes = _run_workers([["-c", CLI_PRELUDE, "train", "image", "--out", str(out), "--resume"] for out in outs],
                         tmp_path, "resumed")
    assert codes == [0, 0], "\n".join(_tail(tmp_path / f"resumed{i}.log") for i in range(2))
    manifest = _manifest(outs[0])
    assert manifest["status"] == "complete" and manifest["resumed"] == 1 and manifest["summary"]["epochs"] == 4
    assert _history_rows(outs[0]) == [1, 2, 3, 4]
    assert (outs[0] / "model.keras").is_file()
    assert not (outs[0] / "checkpoints" / "backup").exists()
    for i in range(2):
        log = (tmp_path / f"resumed{i}.log").read_text()
        assert "resuming after epoch 2" in log and "restored the backup of epoch 2" in log
        assert "epoch 1/4" not in log and "epoch 3/4" in log
    assert sorted(p.name for p in outs[1].iterdir()) == ["config.json", "sensorium.json"]
