#!/usr/bin/env python
"""Export benchmark: latency and size of every way to run a trained image model.

A script, not a pytest test. From the repository root:

    python tests/benchmarks/export_benchmark.py [--model assets/models/mnist] [--runs 200]

Prints, in one run, median latency (ms per call) at batch 1 and batch 32 and the size on disk of:
Keras `model.predict`, a direct call of the Keras model (`model(x, training=False)` in a
tf.function), the SavedModel's `serving_default`, and each TFLite variant run by the edge runner.
The TFLite files are the ones in MODEL/exports/ (`sensorium export --format tflite --quantize all`);
missing variants are exported into a temporary folder first.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import argparse  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def median_ms(fn: Callable[[], object], runs: int, warmup: int = 5) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1000)


def folder_size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(REPO / "assets/models/mnist"), help="run directory")
    parser.add_argument("--runs", type=int, default=200, help="timed calls per figure (default 200)")
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    from sensorium.export.api import export
    from sensorium.export.image import ImageExportSource
    from sensorium.pipelines.common.artifacts import inspect_artifact
    from sensorium.runtime.tflite import EdgeModel

    run = Path(args.model)
    source = ImageExportSource.load(inspect_artifact(run))
    x, _ = source.load_images(None, "test")
    batches = {1: x[:1], 32: x[:32]}
    model = source.model
    direct = tf.function(lambda t: model(t, training=False), reduce_retracing=True)

    exports = run / "exports"
    tmp = Path(tempfile.mkdtemp(prefix="sensorium-export-bench-"))
    names = {"none": "float32", "dynamic": "dynamic", "float16": "float16", "int8": "int8"}
    tflite = {}
    for variant, name in names.items():
        path = exports / f"model-{name}.tflite"
        if not path.is_file():
            path = tmp / f"model-{name}.tflite"
            export(run, "tflite", quantize=variant, out=path, latency_runs=10)
        tflite[name] = path
    saved = exports / "saved_model"
    if not saved.is_dir():
        saved = tmp / "saved_model"
        export(run, "saved_model", out=saved, latency_runs=10)
    serving = tf.saved_model.load(str(saved)).signatures["serving_default"]
    keras_file = run / "model.keras"

    rows = [
        ("keras predict", folder_size(keras_file), lambda b: model.predict(b, verbose=0, batch_size=len(b))),
        ("keras direct call", folder_size(keras_file), lambda b: direct(tf.constant(b)).numpy()),
        ("saved_model", folder_size(saved), lambda b: serving(pixels=tf.constant(b))["probabilities"].numpy()),
    ]
    for name, path in tflite.items():
        edge = EdgeModel(path)
        rows.append((f"tflite {name} ({edge.runtime})", folder_size(path), edge))

    print(f"machine   : {platform.node()} {platform.machine()}, {os.cpu_count()} CPU(s); TensorFlow {tf.__version__}, "
          f"Keras {keras.__version__}, TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS')}")
    print(f"model     : {run} (input {source.input_shape}, {len(source.labels)} classes); {args.runs} timed calls "
          "per figure after 5 warm-up calls, median")
    print()
    print(f"{'runner':38s} {'size':>11s} {'batch 1 ms':>11s} {'batch 32 ms':>12s} {'ms/image @32':>13s}")
    for name, size, fn in rows:
        ms1 = median_ms(lambda fn=fn: fn(batches[1]), args.runs)
        ms32 = median_ms(lambda fn=fn: fn(batches[32]), max(20, args.runs // 4))
        print(f"{name:38s} {size / 1024:>8.1f} KiB {ms1:>11.3f} {ms32:>12.3f} {ms32 / 32:>13.4f}")
    f32, i8 = folder_size(tflite["float32"]), folder_size(tflite["int8"])
    print()
    print(f"int8 file is {f32 / i8:.2f}x smaller than float32 (bar: at least 3.5x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
