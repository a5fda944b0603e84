#!/usr/bin/env python
"""int8 fidelity of an image classifier (issue 21): top-1 agreement of its int8 `.tflite` with Keras, by how
far Keras's top class leads the second, with size and batch-1 latency.

    python tests/benchmarks/int8_agreement.py --model assets/models/imagenet [--out DIR] [--threads 2]
        [--weights-only] [--images DIR]

The calibration and parity images are those of the ImageNet card (`write_check_images`: disjoint sets of
300 crops of the packaged photos and Adwaita icons, at the model's size), written to DIR (default: a
temporary folder). The int8 file is converted with the exporter's own `convert` (pixel map folded into the
input quantisation, bias correction, depthwise rounding) and kept as DIR/model-int8.tflite whatever its
agreement; `sensorium export` keeps a file only when it passes parity. Prints a Markdown table.

`--weights-only` measures the weight-only int8 file instead (`--quantize int8-weights`,
DIR/model-int8-weights.tflite): the same bias correction and weight rounding, converted as float32, then
every convolution and dense kernel stored as per-channel int8 behind a DEQUANTIZE op
(`export/weight_storage.py`), so weights are int8 on disk and activations stay float.

`--images DIR` measures agreement on every PNG under DIR (recursively; at least 32 px a side) instead of
the parity images, each rendered as the icon datasets render one: on white (transparent pixels too),
scaled to fit the model's size, centred on a square. Calibration stays the card's. The photo cut-outs of Tux Paint's stamps are such a set:

    apt-get download tuxpaint-stamps-default && dpkg-deb -x tuxpaint-stamps-default_*.deb stamps
    mkdir photos && cd stamps/usr/share/tuxpaint/stamps && cp -r --parents animals food plants vehicles \
        household clothes hobbies military town/monuments space sports ../../../../../photos && cd -
    find photos -path '*/cartoon/*' -delete
    python tests/benchmarks/int8_agreement.py --images photos
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import io  # noqa: E402
import logging  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

log = logging.getLogger("int8_agreement")
MARGINS = (0.0, 0.05, 0.1, 0.2, 0.4, 1.01)


def load_check_set(model: str, out: str | None, prefix: str) -> tuple[Any, Path, np.ndarray, np.ndarray]:
    """(export source of `model`, the folder, calibration images, parity images): the ImageNet card's
    check images (`write_check_images`) at the model's size, written to `out` (default: temporary)."""
    from sensorium.export.image import ImageExportSource
    from sensorium.pipelines.common.artifacts import inspect_artifact
    from sensorium.pipelines.image.imagenet import write_check_images

    folder = Path(out or tempfile.mkdtemp(prefix=prefix))
    source = ImageExportSource.load(inspect_artifact(model))
    calibration_path, parity_path = write_check_images(folder, source.image_size)
    return source, folder, np.load(calibration_path), np.load(parity_path)


def folder_images(folder: Path, size: int) -> np.ndarray:
    """(N, size, size, 3) uint8: every PNG under `folder` of at least 32 px a side, sorted by path, as the
    icon datasets render one (`render_icon`: on white, scaled to fit, centred on a square)."""
    from PIL import Image

    from sensorium.pipelines.datasets.icons import render_icon
    from sensorium.runtime.errors import DataError

    images = []
    for path in sorted(folder.rglob("*.png")):
        data = path.read_bytes()
        try:
            with Image.open(io.BytesIO(data)) as im:  # the header only
                small = min(im.size) < 32
            if not small:
                images.append(render_icon(data, "png", size))
        except (OSError, DataError) as exc:
            log.warning("%s: skipped (%s)", path, exc)
    if not images:
        raise SystemExit(f"{folder}: no PNG images of at least 32 px a side")
    return np.stack(images)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="assets/models/imagenet", help="run directory or .keras file")
    parser.add_argument("--out", help="folder for the images and the int8 file (default: temporary)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--weights-only", action="store_true", help="measure a weight-only int8 file instead")
    parser.add_argument("--images", type=Path, help="measure on the images under this folder instead")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    from sensorium.export.tflite import convert
    from sensorium.runtime.tflite import EdgeModel

    source, out, calibration, parity = load_check_set(args.model, args.out, "int8-agreement-")
    if args.images:
        parity = folder_images(args.images, source.image_size[0])
    start = time.perf_counter()
    flatbuffer = convert(source.model, input_shape=source.input_shape,
                         quantize="int8-weights" if args.weights_only else "int8",
                         calibration=[c[None] for c in calibration])
    log.info("converted in %.0f s", time.perf_counter() - start)
    name = "int8 weights" if args.weights_only else "int8"
    path = out / ("model-int8-weights.tflite" if args.weights_only else "model-int8.tflite")
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
    print(f"| {name} vs Keras on {len(parity)} {'images of ' + str(args.images) if args.images else 'parity images'} "
          "| value |\n|---|---|")
    print(f"| top-1 agreement | {agree.mean():.4f} ({agree.sum()} of {len(agree)}) |")
    for low, high in zip(MARGINS, MARGINS[1:]):
        chosen = (lead >= low) & (lead < high)
        value = f"{agree[chosen].mean():.3f}" if chosen.any() else "-"
        print(f"| agreement where Keras's top-1 leads by {low}-{min(high, 1.0)} ({chosen.sum()} images) | {value} |")
    print(f"| Keras's top-1 in the {name} top 5 | {in_top5:.3f} |")
    kl = np.sum(keras_probs * (np.log(keras_probs + 1e-12) - np.log(edge_probs + 1e-12)), axis=1)
    print(f"| KL(Keras \\|\\| {name}), mean / median | {kl.mean():.4f} / {np.median(kl):.4f} |")
    print(f"| size | {len(flatbuffer):,} B ({len(float32) / len(flatbuffer):.2f}x smaller than float32, "
          f"{len(float32):,} B) |")
    print(f"| batch-1 latency, {args.threads} threads, {edge.runtime} | {1000 * np.median(times):.1f} ms median |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
