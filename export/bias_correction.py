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

Depthwise kernels have only kh*kw weights per channel, so their rounding error is the largest. Their
weights are rounded up or down (not to nearest) to make the variance of each channel's output error
small on the calibration images (`round_depthwise`); the kernel is written back on the int8 grid, so
the converter keeps exactly those values. An image network's stem is the same case: 27 weights per
channel (3x3 over RGB), some of them large and cancelling on smooth image regions, so nearest rounding
left 23 % error on one of EfficientNet-Lite0's stem channels; a convolution with at most
MAX_ROUNDED_FAN_IN weights per output channel is rounded the same way, on the covariance of its whole
receptive field. On the bundled ImageNet model (300 parity images) top-1 agreement of the int8 file
with Keras went from 0.773 to 0.907 with bias correction and to 0.930 with this rounding; rounding the
stem too took the error of the stem's output from 5.7 % to 0.4 % and the mean KL divergence of the
int8 probabilities from Keras's from 0.0106 to 0.0066, with the same agreement (0.930). Rounding 1x1
convolutions and the classifier the same way measured worse (0.917; with `activation_ranges`, 0.923
and KL 0.0053 against 0.947 and 0.0043), although it lowers the weights' own error; on these 300
low-margin images small changes move agreement by about 3 points either way.
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
COV_BATCHES = 2  # receptive-field covariances from the first 2 batches (50 images)
MAX_ROUNDED_FAN_IN = 64  # a full convolution with at most this many weights per output channel is rounded too


def quantize_weights(w: np.ndarray, axis: int) -> np.ndarray:
    """`w` rounded as TFLite's int8 per-channel weights (channels on `axis`), back in float (float64)."""
    from sensorium.export.weight_storage import int8_per_channel

    codes, scale = int8_per_channel(w, axis)
    shape = [1] * codes.ndim
    shape[axis] = -1
    return codes.astype(np.float64) * scale.reshape(shape)


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


def _small_conv(layer: Any) -> bool:
    """A full (ungrouped) convolution with at most MAX_ROUNDED_FAN_IN weights per output channel: an
    image network's stem, whose few large weights cancel on smooth images."""
    import keras

    if not isinstance(layer, keras.layers.Conv2D) or getattr(layer, "groups", 1) != 1:
        return False
    kh, kw = layer.kernel_size
    return kh * kw * int(layer.kernel.shape[2]) <= MAX_ROUNDED_FAN_IN


def _patches(layer: Any, x: Any) -> np.ndarray:
    """A depthwise or convolution layer's input (B, H, W, C) -> its receptive fields (N, kh * kw, C), float64."""
    import tensorflow as tf

    kh, kw = layer.kernel_size
    sh, sw = layer.strides
    p = tf.image.extract_patches(x, sizes=[1, kh, kw, 1], strides=[1, sh, sw, 1], rates=[1, *layer.dilation_rate, 1],
                                 padding=layer.padding.upper())  # (B, H', W', kh * kw * C), (kh, kw, C) order
    return np.asarray(p, np.float64).reshape(-1, kh * kw, x.shape[-1])


def _input_stats(model: Any, layers: Sequence[Any], images: np.ndarray) -> dict[int, dict[str, np.ndarray]]:
    """Per layer: the per-channel mean of its input over `images` (B, ...) ("mean", (C,)) and, for a
    depthwise layer, the covariance of each channel's receptive field ("cov", (C, kh*kw, kh*kw)); for a
    small convolution (`_small_conv`), that of its whole receptive field ("cov", (1, kh*kw*C, kh*kw*C))."""
    import keras

    sums: dict[int, list[np.ndarray]] = {}
    moments: dict[int, list[tuple[np.ndarray, np.ndarray, int]]] = {}
    originals = []
    for layer in layers:
        call = layer.call

        def recording(x, *args, _layer=layer, _call=call, **kwargs):
            v = np.asarray(x, np.float64)
            sums.setdefault(id(_layer), []).append(v.reshape(-1, v.shape[-1]).mean(axis=0))
            depthwise = isinstance(_layer, keras.layers.DepthwiseConv2D)
            if (depthwise or _small_conv(_layer)) and len(moments.get(id(_layer), [])) < COV_BATCHES:
                patches = _patches(_layer, x)  # (N, K, C)
                if not depthwise:  # one receptive field of K * C inputs, shared by every output channel
                    patches = patches.reshape(len(patches), -1, 1)
                outer = np.einsum("nkc,nlc->ckl", patches, patches)
                moments.setdefault(id(_layer), []).append((patches.sum(axis=0), outer, len(patches)))
            return _call(x, *args, **kwargs)

        originals.append((layer, call))
        layer.call = recording
    try:
        for start in range(0, len(images), BATCH):
            model(images[start:start + BATCH], training=False)  # eager: the hooks see the values
    finally:
        for layer, call in originals:
            layer.call = call
    stats = {key: {"mean": np.mean(values, axis=0)} for key, values in sums.items()}
    for key, parts in moments.items():
        n = sum(count for _, _, count in parts)
        first = sum(total for total, _, _ in parts) / n  # (K, C)
        second = sum(outer for _, outer, _ in parts) / n  # (C, K, K)
        stats[key]["cov"] = second - np.einsum("kc,lc->ckl", first, first)
    return stats


def round_rows(w: np.ndarray, cov: np.ndarray, max_flips: int | None = None) -> np.ndarray:
    """Int8 per-row weights of `w` (O, K) (one output channel per row, scale max|w| / 127), each weight
    rounded down or up so that the output error's variance d' cov d is small, where d is the row's
    weight error and `cov` is the input covariance, per row (O, K, K) or shared (K, K); the error's
    mean is left to bias correction. Starts from nearest rounding; then each row takes the single flip
    that lowers its variance most, until none does or after `max_flips` (default 4 K) rounds: a greedy
    form of AdaRound's objective (Nagel et al., 2020). Returns the rounded weights in float, on the same scales."""
    w = np.asarray(w, np.float64)
    rows, k = w.shape
    scale = np.abs(w).max(axis=1, keepdims=True) / 127.0
    scale[scale == 0] = 1.0
    v = w / scale
    low, high = np.clip(np.floor(v), -127, 127), np.clip(np.ceil(v), -127, 127)
    q = np.clip(np.round(v), -127, 127)
    shared = cov.ndim == 2
    diag = np.diag(cov)[None, :] if shared else np.einsum("ckk->ck", cov)  # (1 | O, K)
    d = (q - v) * scale  # (O, K) weight error
    grad = d @ cov if shared else np.einsum("ckl,cl->ck", cov, d)  # (O, K): cov d per row
    index = np.arange(rows)
    for _ in range(max_flips or 4 * k):
        step = np.where(q == low, high - low, low - high) * scale  # each weight's flip
        gain = 2 * step * grad + step**2 * diag  # change of d' cov d
        gain[step == 0] = np.inf
        best = gain.argmin(axis=1)
        better = index[gain[index, best] < -1e-12]
        if not len(better):
            break
        col = best[better]
        delta = step[better, col]  # (n,)
        q[better, col] = np.where(q[better, col] == low[better, col], high[better, col], low[better, col])
        grad[better] += delta[:, None] * (cov[col] if shared else cov[better, col])
    return q * scale


def round_depthwise(kernel: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """`round_rows` for a depthwise kernel (kh, kw, C, m) with per-channel receptive-field
    covariances (C, kh*kw, kh*kw)."""
    kh, kw, channels, multiplier = kernel.shape
    rows = np.asarray(kernel, np.float64).reshape(kh * kw, channels * multiplier).T  # (C * m, K)
    return round_rows(rows, np.repeat(cov, multiplier, axis=0)).T.reshape(kernel.shape)


def correct_bias(model: Any, images: np.ndarray) -> int:
    """Move each convolution's output statistics in `model` (changed in place: pass a copy) by the
    mean shift that int8 weights will cause on `images` (N, ...) model inputs; returns the number of
    layers corrected."""
    import keras

    targets = _targets(model)
    if not targets:
        return 0
    stats = _input_stats(model, [layer for layer, _ in targets], np.asarray(images[:MAX_IMAGES]))
    corrected = 0
    for layer, bn in targets:
        if id(layer) not in stats:  # not on the inference path
            continue
        mu = stats[id(layer)]["mean"]
        weights = layer.get_weights()
        kernel = np.asarray(weights[0], np.float64)
        if isinstance(layer, keras.layers.DepthwiseConv2D):  # (kh, kw, C, multiplier): output channel C * m
            rounded = round_depthwise(kernel, stats[id(layer)]["cov"])
            shift = ((rounded - kernel).sum(axis=(0, 1)) * mu[:, None]).reshape(-1)
            weights[0] = rounded.astype(weights[0].dtype)  # on the int8 grid: the converter keeps these values
        elif isinstance(layer, keras.layers.Dense):  # (in, out)
            rounded = quantize_weights(kernel, -1)  # (the same rounding on wide rows measured no better)
            shift = mu @ (rounded - kernel)
        elif _small_conv(layer):  # (kh, kw, in, out): rows of kh * kw * in weights, one covariance
            rows = kernel.reshape(-1, kernel.shape[-1]).T
            rounded = round_rows(rows, stats[id(layer)]["cov"][0]).T.reshape(kernel.shape)
            shift = np.einsum("hwio,i->o", rounded - kernel, mu)
            weights[0] = rounded.astype(weights[0].dtype)
        elif getattr(layer, "groups", 1) == 1:  # Conv2D (kh, kw, in, out)
            rounded = quantize_weights(kernel, -1)
            shift = np.einsum("hwio,i->o", rounded - kernel, mu)
        else:  # grouped convolutions: left as they are
            continue
        if bn is not None:  # BN subtracts its moving mean from the convolution's output
            bn_weights = bn.get_weights()
            index = len(bn_weights) - 2  # [gamma], [beta], moving mean, moving variance
            bn_weights[index] = (bn_weights[index] + shift).astype(bn_weights[index].dtype)
            bn.set_weights(bn_weights)
        else:
            weights[1] = (weights[1] - shift).astype(weights[1].dtype)
        layer.set_weights(weights)
        corrected += 1
    log.info("int8: bias correction of %d layers on %d images", corrected, min(len(images), MAX_IMAGES))
    return corrected
