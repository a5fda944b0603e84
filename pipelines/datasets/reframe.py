"""`builtin:mnist-reframed`: the MNIST test digits re-framed the ways users' digits differ from MNIST's.

MNIST centres each digit's 20x20 bounding box in a 28x28 frame. Digits that users photograph or draw
fill the frame, are small, or sit off-centre. Each of the 2,000 `builtin:mnist@test` digits appears
three times in a row, once per framing (the item id ends in the framing's name):

- ``fill``: the digit's bounding box (pixels > 0) scaled, aspect kept, until its longer side spans
  the whole 28-px frame, centred;
- ``half``: the whole 28x28 frame scaled to 14x14 and centred (the digit is about 10 px tall);
- ``shift``: the digit moved 6 px along both axes, the signs drawn per digit from a fixed seed
  (one of the four diagonals; strokes pushed past the edge are cut off).

The only split is ``test`` (``builtin:mnist-reframed@test`` or ``@all``); it is for evaluation, never
for training. Spec ``builtin:mnist-reframed@test[:N]`` slices as any other source.
"""
from __future__ import annotations

import numpy as np

from sensorium.pipelines.common.sources import Items

FRAMINGS = ("fill", "half", "shift")
SHIFT_PX = 6
SHIFT_SEED = 20261202
FRAME = 28


def _resize(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """(h, w) uint8 -> (height, width) uint8, antialiased."""
    from PIL import Image

    return np.asarray(Image.fromarray(img).resize((width, height), Image.Resampling.LANCZOS), dtype=np.uint8)


def fill_frame(img: np.ndarray) -> np.ndarray:
    """(28, 28) uint8 -> (28, 28): the digit's bounding box scaled to fill the frame, centred."""
    rows, cols = np.nonzero(img)
    if rows.size == 0:
        return img.copy()
    box = img[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    h, w = box.shape
    scale = FRAME / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    out = np.zeros((FRAME, FRAME), np.uint8)
    top, left = (FRAME - nh) // 2, (FRAME - nw) // 2
    out[top:top + nh, left:left + nw] = _resize(box, nh, nw)
    return out


def half_size(img: np.ndarray) -> np.ndarray:
    """(28, 28) uint8 -> (28, 28): the whole frame at half size, centred."""
    out = np.zeros((FRAME, FRAME), np.uint8)
    half = FRAME // 2
    out[half // 2:half // 2 + half, half // 2:half // 2 + half] = _resize(img, half, half)
    return out


def shifted(img: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """(H, W) -> (H, W): moved by (dy, dx) pixels, uncovered pixels black, pixels past the edge dropped."""
    out = np.zeros_like(img)
    h, w = img.shape
    src = img[max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
    out[max(0, dy):max(0, dy) + src.shape[0], max(0, dx):max(0, dx) + src.shape[1]] = src
    return out


def reframe(images: np.ndarray, framing: str, seed: int = SHIFT_SEED) -> np.ndarray:
    """(N, 28, 28) uint8 -> (N, 28, 28) uint8 in one framing of FRAMINGS."""
    if framing == "fill":
        return np.stack([fill_frame(im) for im in images])
    if framing == "half":
        return np.stack([half_size(im) for im in images])
    if framing == "shift":
        signs = np.random.default_rng(seed).choice([-1, 1], size=(len(images), 2))
        return np.stack([shifted(im, int(sy) * SHIFT_PX, int(sx) * SHIFT_PX) for im, (sy, sx) in zip(images, signs)])
    raise ValueError(f"unknown framing {framing!r}; known: {', '.join(FRAMINGS)}")


def load_mnist_reframed() -> dict[str, Items]:
    """The `builtin:mnist-reframed` source: {"test": 3 x 2,000 re-framed MNIST test digits}."""
    from sensorium.pipelines.datasets.mnist import load_mnist

    test = load_mnist()["test"]
    gray = test.refs[..., 0]  # (N, 28, 28): the source is grey replicated to RGB
    framed = np.stack([reframe(gray, framing) for framing in FRAMINGS], axis=1)  # (N, 3, 28, 28)
    x = np.repeat(framed.reshape(-1, FRAME, FRAME)[..., None], 3, axis=-1)  # (3N, 28, 28, 3), framings interleaved
    ids = [f"{i}/{framing}" for i in test.ids for framing in FRAMINGS]
    return {"test": Items(x, np.repeat(test.labels, len(FRAMINGS)), list(test.label_names), ids)}
