"""Precision selection (issue 25): mixed bfloat16 on CPUs that have it natively, float32 with one log
line elsewhere; the run summary records the policy and whether oneDNN was on."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from sensorium.pipelines.common import strategy
from sensorium.pipelines.common.strategy import choose_precision, cpu_has_bf16
from sensorium.runtime.errors import UsageError

SAPPHIRE = "processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16 amx_bf16 amx_tile\n\nprocessor\t: 1\n"
SKYLAKE = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw\nbugs\t\t: avx512_bf16_is_not_a_flag_here\n"


def test_cpu_bf16_is_read_from_the_flags_line():
    assert cpu_has_bf16(SAPPHIRE)
    assert not cpu_has_bf16(SKYLAKE)
    assert cpu_has_bf16("flags : amx_bf16\n") and not cpu_has_bf16("")


@pytest.mark.parametrize("mode,gpu,bf16,onednn,default,expected", [
    ("off", True, True, True, True, "float32"),
    ("auto", True, False, False, False, "mixed_float16"),
    ("on", True, False, False, False, "mixed_float16"),
    ("on", False, True, True, False, "mixed_bfloat16"),
    ("on", False, False, True, False, "float32"),  # no native bf16: float32
    ("on", False, True, False, False, "float32"),  # Eigen kernels emulate bf16: float32
    ("auto", False, True, True, False, "float32"),  # a task not checked in bf16 stays float32
    ("auto", False, True, True, True, "mixed_bfloat16"),
])
def test_choose_precision(mode, gpu, bf16, onednn, default, expected):
    assert choose_precision(mode, has_gpu=gpu, bf16=bf16, onednn=onednn, cpu_bf16_default=default) == expected


def test_choose_precision_rejects_unknown_modes():
    with pytest.raises(ValueError, match="auto, on, off"):
        choose_precision("bf16", has_gpu=False, bf16=True, onednn=True)


@pytest.mark.parametrize("bf16,onednn,why", [(False, True, "no native bfloat16"), (True, False, "oneDNN is off")])
def test_fallback_to_float32_says_so_in_one_line(monkeypatch, caplog, bf16, onednn, why):
    import keras

    monkeypatch.setattr(strategy, "cpu_has_bf16", lambda: bf16)
    monkeypatch.setattr(strategy, "onednn_enabled", lambda: onednn)
    try:
        with caplog.at_level(logging.INFO, logger=strategy.__name__):
            assert strategy.set_precision("on") == "float32"
        assert keras.mixed_precision.global_policy().name == "float32"
        lines = [r.getMessage() for r in caplog.records if r.name == strategy.__name__]
        assert len(lines) == 1 and why in lines[0] and "float32" in lines[0]
        caplog.clear()
        with caplog.at_level(logging.INFO, logger=strategy.__name__):
            strategy.set_precision("off")
            strategy.set_precision("auto")  # not asked for bf16: nothing to say
        assert not [r for r in caplog.records if r.name == strategy.__name__]
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_bf16_cpu_gets_mixed_bfloat16(monkeypatch):
    import keras

    monkeypatch.setattr(strategy, "cpu_has_bf16", lambda: True)
    monkeypatch.setattr(strategy, "onednn_enabled", lambda: True)
    try:
        assert strategy.set_precision("auto", cpu_bf16_default=True) == "mixed_bfloat16"
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_run_summary_records_precision_and_onednn():
    import tensorflow as tf

    from sensorium.pipelines.common.training import TrainSettings, run_summary

    state = SimpleNamespace(epochs_done=2, best_epoch=2, best=0.5, stopped_early=False)
    summary = run_summary(state, TrainSettings(), "mixed_bfloat16", tf.distribute.get_strategy())
    assert summary["precision_policy"] == "mixed_bfloat16"
    assert summary["onednn"] is strategy.onednn_enabled() and isinstance(summary["onednn"], bool)
    assert summary["threads"] == {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                                  "inter_op": tf.config.threading.get_inter_op_parallelism_threads()}


@pytest.mark.parametrize("text, expected", [("default", "default"), ("split", "split"), ("1,2", (1, 2)),
                                            (" 0,4 ", (0, 4)), ("8, 2", (8, 2))])
def test_parse_threads(text, expected):
    assert strategy.parse_threads(text) == expected


@pytest.mark.parametrize("text", ["", "fast", "1", "1,2,3", "-1,2", "a,b", "1.5,2", "99999,1", "1;2"])
def test_parse_threads_refuses_in_one_line(text):
    with pytest.raises(UsageError, match="train.threads must be default, split or INTRA,INTER") as err:
        strategy.parse_threads(text)
    assert "\n" not in str(err.value)


def test_bad_threads_are_a_config_error():
    from sensorium.pipelines.common.config import resolve_config
    from sensorium.pipelines.speech.config import SpeechConfig

    assert resolve_config(SpeechConfig, None, {}).train.threads == "split"  # speech's default
    with pytest.raises(UsageError, match="train.threads"):
        resolve_config(SpeechConfig, None, {"train.threads": "many"}).validate()


@pytest.mark.parametrize("setting, expected", [("split", (1, 2)), ("3,1", (3, 1)), ("default", (0, 0))])
def test_set_threads_before_tensorflow_runs(setting, expected):
    """In a fresh process, with (at most) 2 cores visible: split is (1 per op, 2 at a time)."""
    code = ("import os, sys; os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:2]); "
            "from sensorium.pipelines.common.strategy import set_threads; "
            f"print('THREADS', *set_threads({setting!r}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": "-1"})
    assert done.returncode == 0, done.stderr[-2000:]
    line = [ln for ln in done.stdout.splitlines() if ln.startswith("THREADS")]
    assert line == [f"THREADS {expected[0]} {expected[1]}"]


def test_set_threads_once_tensorflow_runs_warns_and_keeps_the_pools(caplog):
    import tensorflow as tf

    tf.constant(1.0) + 1.0  # TensorFlow is running
    before = (tf.config.threading.get_intra_op_parallelism_threads(),
              tf.config.threading.get_inter_op_parallelism_threads())
    wanted = (before[0] + 1, before[1] + 1)
    with caplog.at_level("WARNING"):
        assert strategy.set_threads(f"{wanted[0]},{wanted[1]}") == before
    assert "thread pools stay as they are" in caplog.text


def test_tasks_that_train_in_bfloat16_by_default():
    """`auto` means mixed bfloat16 on a bf16 CPU only where it speeds the step up (README "oneDNN and
    bfloat16"): the translator and the image CNN from scratch; not speech, sentiment or the generative
    tasks (a pretrained image backbone: tests/apps/test_backbone_training.py)."""
    from sensorium.pipelines.generative.config import AutoencoderTrainConfig, GANTrainConfig, VAETrainConfig
    from sensorium.pipelines.image.config import TrainConfig
    from sensorium.pipelines.sentiment.config import SentimentTrainConfig
    from sensorium.pipelines.speech.config import SpeechTrainConfig
    from sensorium.pipelines.translation.config import TranslationTrainConfig

    assert TranslationTrainConfig.cpu_bf16_default is True
    for config in (SpeechTrainConfig, SentimentTrainConfig, TrainConfig, AutoencoderTrainConfig, VAETrainConfig,
                   GANTrainConfig):
        assert config.cpu_bf16_default is False, config


def test_image_cnn_from_scratch_trains_in_bfloat16_on_a_bf16_cpu(monkeypatch, image_folder, tmp_path, capsys):
    """With a native-bf16 CPU and oneDNN (faked: the suite runs the Eigen kernels), `train image` from
    scratch trains in mixed bfloat16 and still saves a float32 model that evaluates."""
    import json

    import keras

    from sensorium.apps import main as sensorium_app
    from sensorium.pipelines.common.artifacts import load_keras

    monkeypatch.setattr(strategy, "cpu_has_bf16", lambda: True)
    monkeypatch.setattr(strategy, "onednn_enabled", lambda: True)
    out = tmp_path / "bf16"
    try:
        code = sensorium_app.main(["train", "image", "--data", str(image_folder), "--out", str(out), "--epochs", "1",
                                   "--image-size", "16", "--widths", "4,8", "--batch-size", "8", "--seed", "1",
                                   "--patience", "0"])
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert code == 0, capsys.readouterr().err
    summary = json.loads((out / "sensorium.json").read_text())["summary"]
    assert summary["precision_policy"] == "mixed_bfloat16"
    model = load_keras(out / "model.keras")
    assert {layer.dtype_policy.name for layer in model.layers if layer.weights} == {"float32"}
    assert json.loads((out / "metrics.json").read_text())["count"] == 4
