"""Make damaged copies of the bundled models, to show that their quality floors can fail.

    python tests/benchmarks/damaged_models.py --out /tmp/damaged
    SENSORIUM_FLOOR_MODELS=/tmp/damaged python -m pytest tests/assets/test_bundled_floors.py

Each bundled run directory is copied with its weights shuffled (seeded): every weight tensor of
`model.keras` has its values permuted, and every weight buffer of the shipped `.tflite` (buffers of at
least 256 bytes: shape constants are smaller) has its 4-byte elements permuted in place, so the file
stays a valid model of the same size and graph. The floors test then scores these instead of the
bundled ones: every test should fail.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
MODELS = {"imagenet": "exports/model-float16.tflite", "mnist": "exports/model-int8.tflite",
          "speech": "exports/model-float32.tflite",
          "sentiment": "exports/model-float32.tflite", "translation": "exports/model-dynamic.tflite"}
KEEP = ("sensorium.json", "config.json", "labels.txt", "labels.tsv", "tokenizer.model", "metrics.json")


def shuffle_tflite(path: Path, rng: np.random.Generator) -> int:
    """Permute the elements of every weight buffer of a .tflite in place; returns how many were shuffled."""
    from ai_edge_litert import schema_py_generated as schema

    data = bytearray(path.read_bytes())
    model = schema.Model.GetRootAs(data, 0)
    shuffled = 0
    for i in range(model.BuffersLength()):
        buffer = model.Buffers(i)
        if buffer.DataLength() < 256:
            continue
        view = buffer.DataAsNumpy()  # a writable view into `data`
        usable = len(view) - len(view) % 4
        elements = view[:usable].view(np.uint32)
        elements[:] = elements[rng.permutation(len(elements))]
        shuffled += 1
    path.write_bytes(bytes(data))
    return shuffled


def shuffle_keras(path: Path, rng: np.random.Generator) -> int:
    """Permute the values of every weight tensor of a .keras model and save it back."""
    from sensorium.models.translation import training_objects
    from sensorium.pipelines.common.artifacts import load_keras

    training_objects()
    model = load_keras(path)
    weights = [w.reshape(-1)[rng.permutation(w.size)].reshape(w.shape) for w in model.get_weights()]
    model.set_weights(weights)
    model.save(path)
    return len(weights)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path, help="folder for the damaged copies")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    for name, edge in MODELS.items():
        src, dst = ROOT / "assets" / "models" / name, args.out / name
        shutil.rmtree(dst, ignore_errors=True)
        (dst / "exports").mkdir(parents=True)
        for keep in KEEP:
            if (src / keep).is_file():
                shutil.copy2(src / keep, dst / keep)
        shutil.copy2(src / "model.keras", dst / "model.keras")
        shutil.copy2(src / edge, dst / edge)
        tensors = shuffle_keras(dst / "model.keras", rng)
        buffers = shuffle_tflite(dst / edge, rng)
        print(f"{name}: {tensors} Keras weight tensors and {buffers} TFLite buffers shuffled -> {dst}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
