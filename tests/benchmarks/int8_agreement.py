#!/usr/bin/env python
"""int8 fidelity of an image classifier (issue 21): top-1 agreement of its int8 `.tflite` with Keras, by how
far Keras's top class leads the second, with size and batch-1 latency.

    python tests/benchmarks/int8_agreement.py --model assets/models/imagenet [--out DIR] [--threads 2]

The calibration and parity images are those of the ImageNet card (`write_check_images`: disjoint sets of
300 crops of the packaged photos and Adwaita icons, at the model's size), written to DIR (default: a
temporary folder). The int8 file is converted with the exporter's own `convert` (pixel map folded into the
input quantisation, bias correction, depthwise rounding) and kept as DIR/model-int8.tflite whatever its
agreement; `sensorium export` keeps a file only when it passes parity. Prints a Markdown table.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import logging  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

log = logging.getLogger("int8_agreement")
MARGINS = (0.0, 0.05, 0.1, 0.2, 0.4, 1.01)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="assets/models/imagenet", help="run directory or .keras file")
    parser.add_argument("--out", help="folder for the images and the int8 file (default: temporary)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    from sensorium.export.image import ImageExportSource
    from sensorium.export.tflite import convert
    from sensorium.pipelines.common.artifacts import inspect_artifact
    from sensorium.pipelines.image.imagenet import write_check_images
    from sensorium.runtime.tflite import EdgeModel

    out = Path(args.out or tempfile.mkdtemp(prefix="int8-agreement-"))
    source = ImageExportSource.load(inspect_artifact(args.model))
    calibration_path, parity_path = write_check_images(out, source.image_size)
    calibration, parity = np.load(calibration_path), np.load(parity_path)
    start = time.perf_counter()
    flatbuffer = convert(source.model, input_shape=source.input_shape, quantize="int8",
                         calibration=[c[None] for c in calibration])
    log.info("converted in %.0f s", time.perf_counter() - start)
    path = out / "model-int8.tflite"
    path.write_bytes(flatbuffer)
    float32 = convert(source.model, input_shape=source.input_shape, quantize="none")
    edge = EdgeModel(path, num_threads=args.threads)
    keras_probs = source.model.predict(parity, batch_size=32, verbose=0)
    times, edge_probs = [], []
    for image in parity:
        t = time.perf_counter()
        edge_probs.append(edge(image[None])[0])
        times.append(time.perf_counter() - t)
    edge_probs = np.asarray(edge_probs)
    agree = keras_probs.argmax(1) == edge_probs.argmax(1)
    ranked = np.sort(keras_probs, axis=1)
    lead = ranked[:, -1] - ranked[:, -2]
    in_top5 = np.mean([k in np.argsort(-e)[:5] for k, e in zip(keras_probs.argmax(1), edge_probs)])
    print(f"| int8 vs Keras on {len(parity)} parity images | value |\n|---|---|")
    print(f"| top-1 agreement | {agree.mean():.3f} |")
    for low, high in zip(MARGINS, MARGINS[1:]):
        chosen = (lead >= low) & (lead < high)
        value = f"{agree[chosen].mean():.3f}" if chosen.any() else "-"
        print(f"| agreement where Keras's top-1 leads by {low}-{min(high, 1.0)} ({chosen.sum()} images) | {value} |")
    print(f"| Keras's top-1 in the int8 top 5 | {in_top5:.3f} |")
    kl = np.sum(keras_probs * (np.log(keras_probs + 1e-12) - np.log(edge_probs + 1e-12)), axis=1)
    print(f"| KL(Keras \\|\\| int8), mean / median | {kl.mean():.4f} / {np.median(kl):.4f} |")
    print(f"| size | {len(flatbuffer):,} B ({len(float32) / len(flatbuffer):.2f}x smaller than float32, "
          f"{len(float32):,} B) |")
    print(f"| batch-1 latency, {args.threads} threads, {edge.runtime} | {1000 * np.median(times):.1f} ms median |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
