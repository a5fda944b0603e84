"""In-model image preprocessing and augmentation, so exported models take raw pixels.

``ImagePreprocessing`` is built from ``keras.ops`` (cast, weighted channel sum, bilinear resize,
multiply/subtract), which lower to TFLite builtins (CAST, MUL, SUM, RESIZE_BILINEAR, SUB).
``ImageAugmentation`` is the identity at inference, so it adds no ops to an exported model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

# ITU-R 601-2 luma weights, the same as tf.image.rgb_to_grayscale.
GRAYSCALE_WEIGHTS = (0.2989, 0.5870, 0.1140)


def _as_floats(value: float | Sequence[float] | None) -> float | list[float] | None:
    """Normalise a scalar / per-channel setting to float or list of floats (JSON-able)."""
    if value is None:
        return None
    if np.ndim(value) == 0:
        return float(value)
    return [float(v) for v in value]


@keras.saving.register_keras_serializable(package="sensorium")
class ImagePreprocessing(keras.layers.Layer):
    """Raw RGB pixels of any size -> model-ready float32 images.

    Input (B, h, w, 3), any numeric dtype (typically uint8 0..255), any h, w.
    Output (B, H, W, channels) float32 with (H, W) = ``image_size``:

    1. cast to float32;
    2. ``channels == 1``: luma grayscale (weighted channel sum, as tf.image.rgb_to_grayscale).
       It is done before the resize, which is equivalent (both are linear) and 3x cheaper;
    3. bilinear resize to ``image_size`` (antialias off, half-pixel centres), skipped when the
       static input size already equals ``image_size``; ``crop_to_aspect_ratio`` centre-crops
       to the target aspect ratio first instead of distorting. With ``padding`` p > 0 the image
       is resized to (H - 2p, W - 2p) and framed by p black pixels on every side (MNIST's own
       framing: a 20x20 digit centred in 28x28 is ``padding=4``), which matches other data to
       a backbone pretrained on framed images;
    4. ``x * scale``;
    5. if ``mean``/``std`` are given (scalar or per output channel, in scaled units):
       ``(x - mean) / std``.

    The layer always computes in float32 (its dtype defaults to "float32", also under a
    mixed-precision global policy); the next layer casts to its own compute dtype.
    """

    def __init__(
        self,
        image_size: Sequence[int] = (28, 28),
        channels: int = 3,
        mean: float | Sequence[float] | None = None,
        std: float | Sequence[float] | None = None,
        scale: float = 1.0 / 255.0,
        crop_to_aspect_ratio: bool = False,
        padding: int = 0,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if len(image_size) != 2 or min(int(s) for s in image_size) < 1:
            raise ValueError(f"image_size must be (height, width) > 0, got {image_size}")
        if int(channels) not in (1, 3):
            raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels}")
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.channels = int(channels)
        self.mean = _as_floats(mean)
        self.std = _as_floats(std)
        self.scale = float(scale)
        self.crop_to_aspect_ratio = bool(crop_to_aspect_ratio)
        self.padding = int(padding)
        if self.padding < 0 or 2 * self.padding >= min(self.image_size):
            raise ValueError(f"padding must be >= 0 and leave room for the image in {self.image_size}, got {padding}")
        for label, value in (("mean", self.mean), ("std", self.std)):
            if isinstance(value, list) and len(value) not in (1, self.channels):
                raise ValueError(f"{label} needs 1 or {self.channels} values, got {value}")
        if self.std is not None and np.any(np.asarray(self.std) == 0):
            raise ValueError("std must be non-zero")

    def call(self, images):
        # images: (B, h, w, 3), any numeric dtype
        x = keras.ops.cast(images, "float32")  # (B, h, w, 3)
        if self.channels == 1:
            weights = keras.ops.convert_to_tensor(np.asarray(GRAYSCALE_WEIGHTS, "float32"))
            x = keras.ops.sum(keras.ops.multiply(x, weights), axis=-1, keepdims=True)  # (B, h, w, 1)
        p = self.padding
        inner = (self.image_size[0] - 2 * p, self.image_size[1] - 2 * p)
        if tuple(x.shape[1:3]) != inner:
            x = keras.ops.image.resize(
                x,
                inner,
                interpolation="bilinear",
                antialias=False,
                crop_to_aspect_ratio=self.crop_to_aspect_ratio,
                data_format="channels_last",
            )  # (B, H - 2p, W - 2p, channels)
        if p:
            x = keras.ops.pad(x, [[0, 0], [p, p], [p, p], [0, 0]])  # (B, H, W, channels), black frame
        if self.scale != 1.0:
            x = keras.ops.multiply(x, self.scale)
        if self.mean is not None:
            x = keras.ops.subtract(x, np.asarray(self.mean, "float32"))
        if self.std is not None:
            x = keras.ops.divide(x, np.asarray(self.std, "float32"))
        return x  # (B, H, W, channels) float32

    def pixel_affine(self, input_size: tuple[int, int]) -> tuple[float, float] | None:
        """(a, b) when this layer maps every pixel value p of an input of `input_size` (H, W) to
        a * p + b, the same for all channels (RGB, no resize, no frame); else None. An int8 export
        folds such a map into its input tensor's quantisation instead of quantising it as ops."""
        if self.channels != 3 or self.padding or tuple(int(s) for s in input_size) != self.image_size:
            return None
        mean, std = np.unique(np.asarray(self.mean or 0.0)), np.unique(np.asarray(self.std or 1.0))
        if len(mean) != 1 or len(std) != 1:  # per-channel statistics: not one map for the tensor
            return None
        return self.scale / float(std[0]), -float(mean[0]) / float(std[0])

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], *self.image_size, self.channels)

    def compute_output_spec(self, images) -> keras.KerasTensor:
        # Always float32, whatever dtype policy the layer was given.
        return keras.KerasTensor(self.compute_output_shape(images.shape), dtype="float32")

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            image_size=list(self.image_size),
            channels=self.channels,
            mean=self.mean,
            std=self.std,
            scale=self.scale,
            crop_to_aspect_ratio=self.crop_to_aspect_ratio,
            padding=self.padding,
        )
        return config


@keras.saving.register_keras_serializable(package="sensorium")
class ImageAugmentation(keras.layers.Layer):
    """Random geometric/photometric augmentation, active only with ``training=True``.

    Wraps keras RandomFlip / RandomRotation / RandomTranslation / RandomZoom / RandomContrast;
    a zero / False setting leaves that transform out. Areas uncovered by a transform are filled
    with 0 (black: the background of white-on-black digits). Place it after
    ``ImagePreprocessing`` so it sees fixed-size float images.

    Args:
        flip: False, True (= "horizontal"), or a RandomFlip mode string
            ("horizontal", "vertical", "horizontal_and_vertical").
        rotation: max rotation as a fraction of a full turn (0.05 = +-18 degrees).
        translation: max shift as a fraction of height/width.
        zoom: max zoom as a fraction (0.1 = +-10 %), or a ``(low, high)`` range as keras RandomZoom reads
            it: negative zooms in, positive zooms out ((-0.35, 1.0) = the content scaled by 1.54 down to 0.5).
        contrast: max contrast change as a fraction.
        seed: base seed (each transform gets ``seed + i``).
        value_range: range of the input values; RandomContrast clips to it. (0, 1) matches
            ``ImagePreprocessing``'s default scale of 1/255.
    """

    def __init__(
        self,
        flip: bool | str = False,
        rotation: float = 0.0,
        translation: float = 0.0,
        zoom: float | Sequence[float] = 0.0,
        contrast: float = 0.0,
        seed: int | None = None,
        value_range: Sequence[float] = (0.0, 1.0),
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.flip = flip if isinstance(flip, str) else bool(flip)
        self.rotation = float(rotation)
        self.translation = float(translation)
        self.zoom: float | tuple[float, float] = (
            (float(zoom[0]), float(zoom[1])) if isinstance(zoom, (list, tuple)) else float(zoom))
        if isinstance(self.zoom, tuple) and not -1.0 < self.zoom[0] <= self.zoom[1]:
            raise ValueError(f"zoom range {list(self.zoom)}: needs -1 < low <= high")
        self.contrast = float(contrast)
        self.seed = None if seed is None else int(seed)
        self.value_range = (float(value_range[0]), float(value_range[1]))

        def next_seed() -> int | None:
            return None if self.seed is None else self.seed + len(self.transforms)

        policy = self.dtype_policy
        fill = dict(fill_mode="constant", fill_value=0.0)
        self.transforms: list[keras.layers.Layer] = []
        if self.flip:
            mode = "horizontal" if self.flip is True else self.flip
            self.transforms.append(keras.layers.RandomFlip(mode, seed=next_seed(), dtype=policy, name="flip"))
        if self.rotation:
            self.transforms.append(
                keras.layers.RandomRotation(self.rotation, seed=next_seed(), dtype=policy, name="rotation", **fill)
            )
        if self.translation:
            self.transforms.append(
                keras.layers.RandomTranslation(
                    self.translation, self.translation, seed=next_seed(), dtype=policy, name="translation", **fill
                )
            )
        if self.zoom:
            self.transforms.append(
                keras.layers.RandomZoom(self.zoom, seed=next_seed(), dtype=policy, name="zoom", **fill)
            )
        if self.contrast:
            self.transforms.append(
                keras.layers.RandomContrast(
                    self.contrast, value_range=self.value_range, seed=next_seed(), dtype=policy, name="contrast"
                )
            )

    def build(self, input_shape: tuple) -> None:
        for transform in self.transforms:
            transform.build(input_shape)

    identity_at_inference = True  # exporters may leave it out of an inference graph

    def call(self, x, training: bool | None = None):
        # x: (B, H, W, C) float
        if not training:
            return x  # identity at inference: no random ops in exported graphs
        for transform in self.transforms:
            x = transform(x, training=True)  # (B, H, W, C)
        return x

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return tuple(input_shape)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            flip=self.flip,
            rotation=self.rotation,
            translation=self.translation,
            zoom=list(self.zoom) if isinstance(self.zoom, tuple) else self.zoom,
            contrast=self.contrast,
            seed=self.seed,
            value_range=list(self.value_range),
        )
        return config


@keras.saving.register_keras_serializable(package="sensorium")
class ContentFraming(keras.layers.Layer):
    """Re-frames bright content on a dark ground the way MNIST framed its digits, inside the model.

    Input and output (B, H, W, C) float, values >= 0 (after ``ImagePreprocessing``). Per image:

    1. the content is the pixels brighter than ``threshold`` x the image's brightest (channel mean);
    2. it is scaled, aspect kept, until its bounding box's longer side spans ``fraction`` of the frame
       (MNIST: 20 of 28 px, 0.714), the scale clamped to [``min_scale``, ``max_scale``];
    3. it is moved so that its centre of mass (brightness-weighted) is the frame's centre.

    So a digit that fills the frame, a small one and an off-centre one all reach the model as MNIST
    shows digits. Sampling is separable: two per-image interpolation matrices (triangle filter, widened
    when shrinking so nothing aliases) and batched matmuls, all TFLite builtins (
    BATCH_MATMUL, reductions and elementwise ops). A blank image passes through unchanged. It stays
    float32 in int8 exports (``keep_float``): 8-bit coordinates would move the content by pixels.
    """

    keep_float = True  # export.tflite keeps this layer's ops in float32 in an int8 file

    def __init__(self, fraction: float = 20.0 / 28.0, threshold: float = 0.25, min_scale: float = 0.25,
                 max_scale: float = 4.0, **kwargs: Any) -> None:
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if not 0.0 < fraction <= 1.0 or not 0.0 < threshold < 1.0 or not 0.0 < min_scale <= 1.0 <= max_scale:
            raise ValueError("ContentFraming needs 0 < fraction <= 1, 0 < threshold < 1, "
                             f"0 < min_scale <= 1 <= max_scale; got {fraction}, {threshold}, {min_scale}, {max_scale}")
        self.fraction = float(fraction)
        self.threshold = float(threshold)
        self.min_scale = float(min_scale)
        self.max_scale = float(max_scale)

    @staticmethod
    def _extent(mask, size: int):
        """(B, N) 0/1 -> first and last index (B,) float of the ones (min / max of masked indices: keras'
        argmax lowers to ops TFLite builtins lack)."""
        index = keras.ops.arange(size, dtype="float32")[None, :]  # (1, N)
        first = keras.ops.min(index + (1.0 - mask) * size, axis=-1)  # (B,)
        last = keras.ops.max(index - (1.0 - mask) * size, axis=-1)  # (B,)
        return first, last

    @staticmethod
    def _sampling(centre, scale, size: int):
        """Interpolation matrix (B, size_out, size_in): output pixel i reads the input around
        centre + (i + 0.5 - size / 2) / scale, with a triangle filter of width max(1, 1 / scale)."""
        grid = keras.ops.arange(size, dtype="float32") + 0.5  # (N,) pixel centres
        src = centre[:, None] + (grid[None, :] - size / 2.0) / scale[:, None]  # (B, N_out)
        a = keras.ops.minimum(scale, 1.0)[:, None, None]  # (B, 1, 1)
        dist = keras.ops.abs(src[:, :, None] - grid[None, None, :])  # (B, N_out, N_in)
        return a * keras.ops.relu(1.0 - a * dist)  # (B, N_out, N_in)

    def call(self, x):
        # x: (B, H, W, C) float >= 0
        height, width = int(x.shape[1]), int(x.shape[2])
        ink = keras.ops.mean(x, axis=-1)  # (B, H, W)
        peak = keras.ops.max(ink, axis=(1, 2))  # (B,)
        blank = keras.ops.cast(peak <= 1e-6, "float32")  # (B,) 1 where there is no content
        mask = keras.ops.cast(ink > self.threshold * peak[:, None, None], "float32")  # (B, H, W)
        top, bottom = self._extent(keras.ops.max(mask, axis=2), height)  # (B,), (B,)
        left, right = self._extent(keras.ops.max(mask, axis=1), width)
        side = keras.ops.maximum(bottom - top, right - left) + 1.0  # (B,) the box's longer side in pixels
        scale = keras.ops.clip(self.fraction * min(height, width) / side, self.min_scale, self.max_scale)  # (B,)
        scale = blank + (1.0 - blank) * scale
        total = keras.ops.sum(ink, axis=(1, 2)) + 1e-6  # (B,)
        rows = keras.ops.arange(height, dtype="float32") + 0.5
        cols = keras.ops.arange(width, dtype="float32") + 0.5
        cy = keras.ops.sum(keras.ops.sum(ink, axis=2) * rows, axis=1) / total  # (B,) centre of mass
        cx = keras.ops.sum(keras.ops.sum(ink, axis=1) * cols, axis=1) / total
        cy = blank * (height / 2.0) + (1.0 - blank) * cy
        cx = blank * (width / 2.0) + (1.0 - blank) * cx
        wy = self._sampling(cy, scale, height)  # (B, H, H)
        wx = self._sampling(cx, scale, width)  # (B, W, W)
        chw = keras.ops.transpose(x, (0, 3, 1, 2))  # (B, C, H, W)
        out = keras.ops.matmul(keras.ops.matmul(wy[:, None], chw), keras.ops.transpose(wx, (0, 2, 1))[:, None])
        return keras.ops.transpose(out, (0, 2, 3, 1))  # (B, H, W, C)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return tuple(input_shape)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(fraction=self.fraction, threshold=self.threshold, min_scale=self.min_scale,
                      max_scale=self.max_scale)
        return config
