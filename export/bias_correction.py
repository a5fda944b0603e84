"""Bias correction for int8 weights (Nagel et al., 2019, "Data-free quantization", section 4.2).

Rounding a convolution's weights to int8 shifts the mean of its output: for input channel means
E[x], output channel c moves by sum((Q(W) - W)[..., c] * E[x]). Small per layer, the shifts add up
through a deep network and flip the top class of a 1000-class model wherever its first two classes
are close. This module measures E[x] at every convolution of a model on calibration images (one pass
of the float model) and moves the batch-norm statistics (or the bias) after each convolution by that
shift, so that the int8 file's folded bias cancels it. It changes only a copy used for conversion.

`Q` is TFLite's int8 weight quantisation: per output channel, symmetric, scale max|w| / 127. Batch
norm folding scales each output channel by gamma / sigma, which leaves that rounding unchanged, so the
shift can be corrected before folding, in the moving mean.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

# (convolution attribute, batch-norm attribute) of our blocks: ConvBNAct and InvertedResidual's depthwise
PAIRS = (("conv", "bn"), ("depthwise", "depthwise_bn"))
MAX_IMAGES = 100
BATCH = 25


def quantize_weights(w: np.ndarray, axis: int) -> np.ndarray:
    """`w` rounded as TFLite's int8 per-channel weights (channels on `axis`), back in float."""
    moved = np.moveaxis(np.asarray(w, np.float64), axis, -1)
    scale = np.abs(moved).reshape(-1, moved.shape[-1]).max(axis=0) / 127.0
    scale[scale == 0] = 1.0
    q = np.clip(np.round(moved / scale), -127, 127) * scale
    return np.moveaxis(q, -1, axis)


def _targets(model: Any) -> list[tuple[Any, Any]]:
    """(convolution or dense layer, the batch norm after it or None) for every layer of `model` that
    int8 conversion gives int8 weights and whose output mean can be corrected."""
    import keras

    out, seen = [], set()
    for layer in model._flatten_layers(include_self=False):
        for conv_name, bn_name in PAIRS:
            conv, bn = getattr(layer, conv_name, None), getattr(layer, bn_name, None)
            if isinstance(conv, keras.layers.Layer) and isinstance(bn, keras.layers.BatchNormalization):
                out.append((conv, bn))
                seen.add(id(conv))
    for layer in model._flatten_layers(include_self=False):
        if (isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense))
                and id(layer) not in seen and layer.use_bias):
            out.append((layer, None))
    return out


def _input_means(model: Any, layers: Sequence[Any], images: np.ndarray) -> dict[int, np.ndarray]:
    """Per-channel mean of each layer's input over `images` (B, ...) (all positions), float64."""
    sums: dict[int, list[np.ndarray]] = {}
    originals = []
    for layer in layers:
        call = layer.call

        def recording(x, *args, _layer=layer, _call=call, **kwargs):
            v = np.asarray(x, np.float64)
            sums.setdefault(id(_layer), []).append(v.reshape(-1, v.shape[-1]).mean(axis=0))
            return _call(x, *args, **kwargs)

        originals.append((layer, call))
        layer.call = recording
    try:
        for start in range(0, len(images), BATCH):
            model(images[start:start + BATCH], training=False)  # eager: the hooks see the values
    finally:
        for layer, call in originals:
            layer.call = call
    return {key: np.mean(values, axis=0) for key, values in sums.items()}


def correct_bias(model: Any, images: np.ndarray) -> int:
    """Move each convolution's output statistics in `model` (changed in place: pass a copy) by the
    mean shift that int8 weights will cause on `images` (N, ...) model inputs; returns the number of
    layers corrected."""
    import keras

    targets = _targets(model)
    if not targets:
        return 0
    means = _input_means(model, [layer for layer, _ in targets], np.asarray(images[:MAX_IMAGES]))
    corrected = 0
    for layer, bn in targets:
        mu = means.get(id(layer))
        if mu is None:  # not on the inference path
            continue
        weights = layer.get_weights()
        kernel = np.asarray(weights[0], np.float64)
        if isinstance(layer, keras.layers.DepthwiseConv2D):  # (kh, kw, C, multiplier): output channel C * m
            error = quantize_weights(kernel, 2) - kernel
            shift = (error.sum(axis=(0, 1)) * mu[:, None]).reshape(-1)
        elif isinstance(layer, keras.layers.Dense):  # (in, out)
            error = quantize_weights(kernel, -1) - kernel
            shift = mu @ error
        elif getattr(layer, "groups", 1) == 1:  # Conv2D (kh, kw, in, out)
            error = quantize_weights(kernel, -1) - kernel
            shift = np.einsum("hwio,i->o", error, mu)
        else:  # grouped convolutions: left as they are
            continue
        if bn is not None:  # BN subtracts its moving mean from the convolution's output
            stats = bn.get_weights()
            index = len(stats) - 2  # [gamma], [beta], moving mean, moving variance
            stats[index] = (stats[index] + shift).astype(stats[index].dtype)
            bn.set_weights(stats)
        else:
            weights[1] = (weights[1] - shift).astype(weights[1].dtype)
            layer.set_weights(weights)
        corrected += 1
    log.info("int8: bias correction of %d layers on %d images", corrected, min(len(images), MAX_IMAGES))
    return corrected
