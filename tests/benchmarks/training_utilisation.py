#!/usr/bin/env python
"""Training utilisation: model FLOPs per training step, counted from the graph, divided by the measured
step time, as a share of this machine's measured matmul peak in the same precision (issue 25).

A script, not a pytest test. From the repository root:

    python tests/benchmarks/training_utilisation.py [--tasks image] [--precisions float32,mixed_bfloat16]
                                                    [--steps 20] [--windows 5] [--json FILE]

- Peak: the best of `--windows` timings of a 2048x2048 @ 2048x2048 `tf.matmul` chain (float32, and
  bfloat16 inputs for the bf16 peak), 2*n^3 FLOPs each.
- FLOPs per step: `tf.compat.v1.profiler`'s float-operation count of the graph of one training step's
  forward pass, loss and gradients (`tf.GradientTape` in a `tf.function` at the training batch shape;
  the optimizer's update is left out: it is a few FLOPs per weight). The profiler counts Conv2D, its two
  gradients, MatMul and element-wise ops; it does not see inside While loops or Einsum, so it suits the
  image ResNet; tasks whose graphs rely on those (speech's LSTMs, the Transformers' attention) need an
  analytic count and are not measured yet.
- Step time: the fastest of `--windows` windows of `--steps` `model.fit` steps on one fixed batch of
  real shapes (the input pipeline is out of the measure), after a warm-up.
oneDNN follows `TF_ENABLE_ONEDNN_OPTS` (TensorFlow's default: on); the report says which. The machine
may be shared: the best window of each measure is reported, and the load average next to it.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
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
    """One task's training step: the compiled model and one batch (x, y, sample weight)."""

    model: Any
    batch: tuple[Any, Any, Any]
    loss: Callable[[Any, Any], Any]


def matmul_peak(dtype: str, n: int = 2048, repeats: int = 8, windows: int = 5) -> float:
    """FLOP/s of a chain of n x n matmuls in `dtype` (best window)."""
    import tensorflow as tf

    a = tf.random.normal((n, n), dtype=tf.float32)
    a = tf.cast(a, dtype)

    @tf.function
    def chain(x):
        for _ in range(repeats):
            x = tf.matmul(x, a) * tf.constant(1e-3, dtype)
        return x

    chain(a).numpy()
    best = min(_timed(lambda: chain(a).numpy()) for _ in range(windows))
    return 2 * n**3 * repeats / best


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


TASKS: dict[str, Callable[[], Workload]] = {"image": image_workload}


def step_flops(work: Workload) -> int:
    """Float operations of forward pass, loss and gradients, counted by TensorFlow's profiler."""
    import tensorflow as tf

    model = work.model
    x, y, w = work.batch

    @tf.function
    def step(x, y, w):
        with tf.GradientTape() as tape:
            loss = work.loss(y, model(x, training=True), sample_weight=w)
        return tape.gradient(loss, model.trainable_variables)

    graph = step.get_concrete_function(*(tf.TensorSpec(np.shape(t), tf.as_dtype(np.asarray(t).dtype))
                                         for t in (x, y, w))).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return int(tf.compat.v1.profiler.profile(graph, options=options).total_float_ops)


def step_seconds(work: Workload, steps: int, windows: int) -> float:
    """The fastest window's seconds per `model.fit` step on the fixed batch."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensors(work.batch).repeat()
    work.model.fit(ds, steps_per_epoch=5, epochs=1, verbose=0)  # trace and warm up
    return min(_timed(lambda: work.model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0))
               for _ in range(windows)) / steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default="image", help=f"comma-separated, of: {', '.join(TASKS)}")
    parser.add_argument("--precisions", default="float32,mixed_bfloat16")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    import keras

    from sensorium.pipelines.common.strategy import cpu_has_bf16, onednn_enabled

    peaks = {"float32": matmul_peak("float32")}
    if "mixed_bfloat16" in args.precisions:
        peaks["mixed_bfloat16"] = matmul_peak("bfloat16")
    rows = []
    for task in args.tasks.split(","):
        for policy in args.precisions.split(","):
            keras.mixed_precision.set_global_policy(policy)
            keras.utils.set_random_seed(0)
            work = TASKS[task]()
            flops = step_flops(work)
            seconds = step_seconds(work, args.steps, args.windows)
            rows.append({"task": task, "precision": policy, "gflop_per_step": flops / 1e9,
                         "s_per_step": seconds, "gflop_per_s": flops / seconds / 1e9,
                         "peak_gflop_per_s": peaks[policy] / 1e9, "share_of_peak": flops / seconds / peaks[policy],
                         "load": os.getloadavg()[0]})
            keras.mixed_precision.set_global_policy("float32")
    print(f"oneDNN {'on' if onednn_enabled() else 'off'}; native bf16: {cpu_has_bf16()}; cores: {os.cpu_count()}")
    print("matmul peak (2048^3): " + ", ".join(f"{k} {v / 1e9:.0f} GFLOP/s" for k, v in peaks.items()))
    print("| task | precision | GFLOP/step | s/step | GFLOP/s | share of peak | load |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['task']} | {r['precision']} | {r['gflop_per_step']:.2f} | {r['s_per_step']:.3f} | "
              f"{r['gflop_per_s']:.1f} | {100 * r['share_of_peak']:.1f}% | {r['load']:.1f} |")
    if args.json:
        args.json.write_text(json.dumps({"peaks": peaks, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
