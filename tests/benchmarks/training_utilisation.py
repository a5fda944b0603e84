#!/usr/bin/env python
"""Training utilisation: model FLOPs per training step, counted from the graph, divided by the measured
step time, as a share of this machine's measured matmul peak in the same precision (issue 25).

A script, not a pytest test. From the repository root:

    python tests/benchmarks/training_utilisation.py [--tasks image,speech,translation,sentiment]
        [--precisions float32,mixed_bfloat16] [--onednn on|off|off,on] [--steps 20] [--windows 5] [--json FILE]

- Peak: the best of `--windows` timings of a 2048x2048 @ 2048x2048 `tf.matmul` chain (float32, and
  bfloat16 inputs for the bf16 peak), 2*n^3 FLOPs each.
- FLOPs per step: `sensorium.pipelines.common.flops.training_step_flops`: the graph of one training step's
  forward pass, loss and gradients (`tf.GradientTape` in a `tf.function` at the training batch shape),
  counted op by op, LSTM loop bodies times their time steps and attention einsums included (the
  optimizer's update is left out: a few FLOPs per weight).
- Workloads, each with its bundled model's network and optimisation and one batch of its training
  shape: `image` the digits ResNet (assets/configs/mnist.json, 64 images of 28x28); `speech` the bundled
  recogniser's config (32 utterances of `--speech-seconds`, default 1.2 s: builtin:speech's mean, 2.01 h
  over 5,999 utterances, and training batches are sorted by length; transcripts of 12.25 characters per
  second, the corpus's 14.7 characters at 1.2 s: the 40 used before could not be aligned to 1.2 s's 30
  output frames, which made CTC's loss about 780 instead of about 75);
  `translation` assets/configs/translation.json (64 pairs of `--tokens` source and target tokens,
  default 24); `sentiment` assets/configs/sentiment.json (64 texts of 32 tokens).
- Step time: the fastest of `--windows` windows of `--steps` `model.fit` steps on one fixed batch of
  real shapes (the input pipeline is out of the measure), after a warm-up.
- `--onednn off,on` measures each setting in its own process (`TF_ENABLE_ONEDNN_OPTS` is read when
  TensorFlow loads), back to back, and adds each row's speed-up over oneDNN off in float32: the training
  settings before issue 25 (commit f125341: oneDNN off, TensorFlow's default threads, and for speech
  Keras's own LSTM loop and the matmul DFT in training); oneDNN off measures float32 only (TensorFlow's own kernels
  emulate bfloat16: 2-6x slower than float32 here). Without it oneDNN follows the environment (TensorFlow's
  default: on); the report says which.
- `--threads` sizes TensorFlow's thread pools for the measure (`train.threads`: default, split or
  INTRA,INTER); speech trains with `split` by default, so its row is measured with
  `--tasks speech --threads split` (with `--onednn off,on`, the off process keeps the defaults).
The machine may be shared: the best window of each measure is reported, and the load average next to it.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

log = logging.getLogger("training_utilisation")
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Workload:
    """One task's training step: the compiled model, one batch (x, y, sample weight or None) and the
    time steps of its recurrent loops (None: it has none)."""

    model: Any
    batch: tuple[Any, Any, Any]
    loss: Callable[[Any, Any], Any]
    loop_trips: int | None = None


def matmul_peak(dtype: str, n: int = 2048, repeats: int = 8, windows: int = 5) -> float:
    """FLOP/s of a chain of n x n matmuls in `dtype` (best window). Where TensorFlow runs k > 1 ops at a
    time with set pools (`--threads split`: one core per op), k independent chains run side by side, so
    the peak is still the whole machine's."""
    import tensorflow as tf

    chains = max(1, tf.config.threading.get_inter_op_parallelism_threads())
    if tf.config.threading.get_intra_op_parallelism_threads() == 0:
        chains = 1  # default pools: one chain already uses every core
    a = tf.random.normal((n, n), dtype=tf.float32)
    a = tf.cast(a, dtype)

    @tf.function
    def chain(x):
        outs = []
        for c in range(chains):
            y = x + tf.constant(c, dtype)
            for _ in range(repeats):
                y = tf.matmul(y, a) * tf.constant(1e-3, dtype)
            outs.append(y)
        return tf.add_n(outs)

    chain(a).numpy()
    best = min(_timed(lambda: chain(a).numpy()) for _ in range(windows))
    return 2 * n**3 * repeats * chains / best


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def image_workload(batch_size: int = 64) -> Workload:
    """The bundled digits model's network and optimisation (assets/configs/mnist.json), batch 64."""
    import keras

    from sensorium.models.image import build_image_classifier
    from sensorium.pipelines.common.config import resolve_config
    from sensorium.pipelines.image.config import ImageClassificationConfig
    from sensorium.pipelines.image.train import compile_classifier

    cfg = resolve_config(ImageClassificationConfig, ROOT / "assets/configs/mnist.json", {})
    cfg.model.backbone = None  # greyscale MNIST: "auto" resolves to our network from scratch
    model = build_image_classifier(cfg.model, 10)
    compile_classifier(model, cfg.train, 100, 10)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (batch_size, 28, 28, 3), dtype=np.uint8)
    y = rng.integers(0, 10, batch_size)
    return Workload(model, (x, y, np.ones(batch_size, np.float32)), keras.losses.SparseCategoricalCrossentropy())


CHARS_PER_SECOND = 14.7 / 1.2  # builtin:speech: 14.7 characters per transcript, 1.2 s per utterance


def speech_workload(batch_size: int = 32, seconds: float = 1.2, baseline: bool = False) -> Workload:
    """The bundled recogniser's network and optimisation (assets/models/speech/config.json), 32
    utterances of `seconds` of audio with transcripts of the corpus's rate (CHARS_PER_SECOND).
    `baseline`: f125341's step: Keras's LSTM loop and the matmul DFT in training too."""
    from sensorium.models.speech import build_speech_recognizer, ctc_loss, output_frames
    from sensorium.pipelines.common.config import resolve_config
    from sensorium.pipelines.common.optimizers import make_optimizer
    from sensorium.pipelines.speech.config import SpeechConfig
    from sensorium.runtime.transcripts import ALPHABET

    cfg = resolve_config(SpeechConfig, ROOT / "assets/models/speech/config.json",
                         {"model.lstm": "keras" if baseline else "hoisted"})
    if baseline:  # f125341's front end computed the DFT as a matmul in training as well
        from sensorium.models.blocks.audio import LogMelSpectrogram

        serve = LogMelSpectrogram.call
        LogMelSpectrogram.call = lambda self, waveform, training=None: serve(self, waveform, training=False)
    model = build_speech_recognizer(cfg.model, ALPHABET)
    model.compile(optimizer=make_optimizer(cfg.train, 200), loss=ctc_loss)
    samples = int(seconds * cfg.model.sample_rate)
    frames = output_frames(cfg.model, samples)
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal((batch_size, samples))).astype(np.float32)
    chars = max(1, min(round(CHARS_PER_SECOND * seconds), frames // 2))  # alignable: CTC needs frames >= chars
    labels = rng.integers(1, len(ALPHABET) + 1, (batch_size, chars))
    y = np.concatenate([np.full((batch_size, 1), frames), labels], axis=1).astype(np.int32)
    return Workload(model, (x, y, np.ones(batch_size, np.float32)), ctc_loss, loop_trips=frames)


def translation_workload(batch_size: int = 64, tokens: int = 24) -> Workload:
    """The translator of assets/configs/translation.json (8,000-piece shared vocabulary), 64 pairs of
    `tokens` source and target tokens."""
    from sensorium.models.translation import build_translator, training_objects
    from sensorium.pipelines.common.config import resolve_config
    from sensorium.pipelines.common.optimizers import make_optimizer
    from sensorium.pipelines.translation.config import TranslationConfig

    cfg = resolve_config(TranslationConfig, ROOT / "assets/configs/translation.json", {})
    vocab = cfg.model.vocab_size
    model = build_translator(cfg.model, source_vocab=vocab, target_vocab=vocab)
    loss_cls, accuracy = training_objects()
    loss = loss_cls(cfg.train.label_smoothing)
    model.compile(optimizer=make_optimizer(cfg.train, 1000), loss=loss, metrics=[accuracy])
    rng = np.random.default_rng(0)
    source, target = (rng.integers(4, vocab, (batch_size, tokens)).astype(np.int32) for _ in range(2))
    labels = np.roll(target, -1, axis=1)
    return Workload(model, ((source, target), labels, None), loss)


def sentiment_workload(batch_size: int = 64, tokens: int = 32) -> Workload:
    """The sentiment classifier of assets/configs/sentiment.json (4,000 pieces, three labels), 64 texts
    of `tokens` tokens."""
    import keras

    from sensorium.models.sentiment import build_text_classifier
    from sensorium.pipelines.common.config import resolve_config
    from sensorium.pipelines.common.optimizers import make_optimizer
    from sensorium.pipelines.sentiment.config import SentimentConfig

    cfg = resolve_config(SentimentConfig, ROOT / "assets/configs/sentiment.json", {})
    model = build_text_classifier(cfg.model, ["negative", "neutral", "positive"], vocab_size=cfg.model.vocab_size)
    model.compile(optimizer=make_optimizer(cfg.train, 500), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x = rng.integers(4, cfg.model.vocab_size, (batch_size, tokens)).astype(np.int32)
    return Workload(model, (x, rng.integers(0, 3, batch_size), np.ones(batch_size, np.float32)),
                    keras.losses.SparseCategoricalCrossentropy())


TASKS: dict[str, Callable[..., Workload]] = {"image": image_workload, "speech": speech_workload,
                                              "translation": translation_workload, "sentiment": sentiment_workload}


def step_seconds(work: Workload, steps: int, windows: int) -> float:
    """The fastest window's seconds per `model.fit` step on the fixed batch."""
    import tensorflow as tf

    x, y, w = work.batch
    ds = tf.data.Dataset.from_tensors((x, y) if w is None else (x, y, w)).repeat()
    work.model.fit(ds, steps_per_epoch=5, epochs=1, verbose=0)  # trace and warm up
    return min(_timed(lambda: work.model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0))
               for _ in range(windows)) / steps


def measure(tasks: list[str], precisions: list[str], steps: int, windows: int, workload_args: dict) -> dict:
    """Peaks and one row per task and precision, in this process (oneDNN as TensorFlow loaded it)."""
    import keras

    from sensorium.pipelines.common.flops import training_step_flops
    from sensorium.pipelines.common.strategy import cpu_has_bf16, onednn_enabled

    peaks = {"float32": matmul_peak("float32", windows=windows)}
    if "mixed_bfloat16" in precisions:
        peaks["mixed_bfloat16"] = matmul_peak("bfloat16", windows=windows)
    import tensorflow as tf

    onednn = "on" if onednn_enabled() else "off"
    threads = (f"{tf.config.threading.get_intra_op_parallelism_threads()},"
               f"{tf.config.threading.get_inter_op_parallelism_threads()}")  # 0: one per core
    rows = []
    for task in tasks:
        for policy in precisions:
            keras.mixed_precision.set_global_policy(policy)
            keras.utils.set_random_seed(0)
            work = TASKS[task](**workload_args.get(task, {}))
            flops = training_step_flops(work.model, work.loss, work.batch, loop_trips=work.loop_trips)
            seconds = step_seconds(work, steps, windows)
            rows.append({"task": task, "precision": policy, "onednn": onednn, "threads": threads,
                         "gflop_per_step": flops / 1e9,
                         "s_per_step": seconds, "gflop_per_s": flops / seconds / 1e9,
                         "peak_gflop_per_s": peaks[policy] / 1e9, "share_of_peak": flops / seconds / peaks[policy],
                         "load": os.getloadavg()[0]})
            log.info("%s %s oneDNN %s: %.3f s/step", task, policy, onednn, seconds)
            keras.mixed_precision.set_global_policy("float32")
    return {"peaks": {f"{k} oneDNN {onednn}": v for k, v in peaks.items()}, "rows": rows,
            "native_bf16": cpu_has_bf16()}


def _in_child(onednn: str, argv: list[str]) -> dict:
    """`measure` in a fresh process with oneDNN `onednn` (on/off), through this script's --json."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rows.json"
        env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS="1" if onednn == "on" else "0")
        subprocess.run([sys.executable, __file__, *argv, "--json", str(out)], env=env, check=True)
        return json.loads(out.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default="image,speech,translation,sentiment", help=f"comma-separated, of: {', '.join(TASKS)}")
    parser.add_argument("--precisions", default="float32,mixed_bfloat16")
    parser.add_argument("--onednn", help="off,on: each in its own process, with speed-ups over off/float32")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--speech-seconds", type=float, default=1.2)
    parser.add_argument("--threads", default="default", help="TensorFlow's thread pools: default, split or I,O "
                        "(with --onednn, the off process keeps the defaults)")
    parser.add_argument("--baseline", action="store_true", help="f125341's speech step (Keras's LSTM loop, "
                        "the matmul DFT in training); --onednn off implies it")
    parser.add_argument("--tokens", type=int, default=24, help="source and target tokens per translation pair")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    tasks, precisions = args.tasks.split(","), args.precisions.split(",")
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        parser.error(f"unknown task(s) {', '.join(unknown)}; known: {', '.join(TASKS)}")
    if args.onednn and not set(args.onednn.split(",")) <= {"on", "off"}:
        parser.error(f"--onednn takes on, off or both (off,on), not {args.onednn!r}")
    if args.onednn:
        results = []
        for setting in args.onednn.split(","):  # bfloat16 without oneDNN is emulated (slower): float32 only
            kept = precisions if setting == "on" else [p for p in precisions if p == "float32"]
            if kept:
                results.append(_in_child(setting, [
                    "--tasks", args.tasks, "--precisions", ",".join(kept), "--steps", str(args.steps),
                    "--windows", str(args.windows), "--speech-seconds", str(args.speech_seconds),
                    "--threads", "default" if setting == "off" else args.threads,
                    *(["--baseline"] if setting == "off" or args.baseline else []),
                    "--tokens", str(args.tokens)]))
        report = {"peaks": {k: v for r in results for k, v in r["peaks"].items()},
                  "rows": [row for r in results for row in r["rows"]], "native_bf16": results[0]["native_bf16"]}
    else:
        from sensorium.pipelines.common.strategy import set_threads

        set_threads(args.threads)
        report = measure(tasks, precisions, args.steps, args.windows,
                         {"speech": {"seconds": args.speech_seconds, "baseline": args.baseline},
                          "translation": {"tokens": args.tokens}})
    base = {r["task"]: r["s_per_step"] for r in report["rows"] if r["precision"] == "float32" and r["onednn"] == "off"}
    print(f"native bf16: {report['native_bf16']}; cores: {os.cpu_count()}")
    print("matmul peak (2048^3): " + ", ".join(f"{k} {v / 1e9:.0f} GFLOP/s" for k, v in report["peaks"].items()))
    print("| task | precision | oneDNN | threads (per op, at a time; 0: default) | GFLOP/step | s/step "
          "| speed-up over oneDNN off, float32 | GFLOP/s | share of peak | load |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in report["rows"]:
        speedup = f"{base[r['task']] / r['s_per_step']:.2f}x" if r["task"] in base else "-"
        print(f"| {r['task']} | {r['precision']} | {r['onednn']} | {r.get('threads', '-')} | "
              f"{r['gflop_per_step']:.2f} | {r['s_per_step']:.3f} | "
              f"{speedup} | {r['gflop_per_s']:.1f} | {100 * r['share_of_peak']:.1f}% | {r['load']:.1f} |")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
