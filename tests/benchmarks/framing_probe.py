#!/usr/bin/env python
"""How the framing of the 8x8 digits decides transfer from MNIST (issue 4's study, without training).

The bundled MNIST model's frozen features (everything before its head) of `builtin:digits`, resized
into the centre of a 28x28 frame with P black pixels around (`--padding P`), then a logistic
regression trained on 100 random digits and scored on 397 others, 5 random draws per padding.

    python tests/benchmarks/framing_probe.py
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def main() -> int:
    import tensorflow as tf
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    from sensorium.export.hub_module import feature_extractor
    from sensorium.pipelines.common.artifacts import load_keras

    extractor = feature_extractor(load_keras(REPO / "assets/models/mnist/model.keras"))
    digits = load_digits()
    x, y = (digits.images * 255 / 16).astype("float32"), digits.target
    print("padding  accuracy (mean ± sd over 5 draws of 100 training digits)")
    for pad in (0, 2, 3, 4, 5):
        framed = tf.pad(tf.image.resize(x[..., None], (28 - 2 * pad, 28 - 2 * pad)), [[0, 0], [pad, pad], [pad, pad], [0, 0]])
        pixels = np.repeat(np.clip(np.round(framed.numpy()), 0, 255).astype("uint8"), 3, -1)
        features = extractor.predict(pixels, verbose=0)
        accs = []
        for seed in range(5):
            idx = np.random.default_rng(seed).permutation(len(y))
            train, test = idx[:100], idx[1400:]
            clf = LogisticRegression(max_iter=3000).fit(features[train], y[train])
            accs.append(clf.score(features[test], y[test]))
        print(f"{pad:7d}  {100 * np.mean(accs):.1f}% ± {100 * np.std(accs):.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
