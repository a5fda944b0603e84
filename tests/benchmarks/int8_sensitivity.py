#!/usr/bin/env python
"""Where an image classifier's int8 error comes from (issue 21): the int8 file simulated in Keras, one
quantised tensor at a time.

    python tests/benchmarks/int8_sensitivity.py --model assets/models/imagenet [--out DIR] [--top 10]

`int8_agreement.py` measures the int8 file; this attributes its error. The model is cloned with each
batch norm folded into its convolution (as TFLite folds it), the exporter's own bias correction and
weight rounding are applied (`export.bias_correction.correct_bias`), and then every convolution and
dense kernel is rounded as TFLite's per-channel int8 weights and every tensor the int8 file quantises
(each activation's output, a linear projection's output, each residual sum, the pooled features and
the logits; not the float softmax) goes through an 8-bit fake quantisation over the range the exporter
would give it: min and max on the first 32 calibration images, clipped to the smallest quantisation
error (`export.activation_ranges.mse_range`). Printed, on the ImageNet card's 300 parity images
(`write_check_images`, as `int8_agreement.py`): top-1 agreement with the Keras model and mean
KL(Keras || simulated) for the corrected float model, weights only, activations only and both (which
should come close to the int8 file's own figures), then for each quantised tensor alone on top of the
int8 weights, the tensors that cost the most KL first. Needs the blocks' layer classes (`ConvBNAct`,
`InvertedResidual`, Keras convolutions, dense, activations and pooling); a block it cannot simulate
is refused in one line.

Read the per-tensor list as a ranking, not a budget: the errors do not add up (on the bundled model
the tensors' one-at-a-time costs sum to about twice the cost of all of them together), and leaving
the costliest ones unquantised in the simulation (`Int8Simulation.only` and `ranges` are the handles)
moved agreement by less than the 300 images' noise.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

log = logging.getLogger("int8_sensitivity")
RANGE_IMAGES = 32  # as export.activation_ranges.MAX_INPUTS
SAMPLES_PER_IMAGE = 20_000  # as export.activation_ranges.SAMPLES_PER_INPUT
BATCH = 25


class Int8Simulation:
    """Fake int8 on a clone of a Keras image classifier: `weights` and `activations` switch the two kinds
    of rounding; `only` limits activation rounding to one site (a key of `ranges`)."""

    def __init__(self, model: Any, calibration: np.ndarray) -> None:
        import keras

        from sensorium.export.bias_correction import MAX_IMAGES, correct_bias

        self.model = keras.models.clone_model(model)
        self.model.set_weights(model.get_weights())
        self._fold_batch_norm()
        correct_bias(self.model, calibration[:MAX_IMAGES])
        self.weights = self.activations = False
        self.only: Any = None
        self._rounded: dict[int, np.ndarray] = {}  # id(layer) -> its int8-rounded kernel
        self.names: dict[Any, str] = {}
        self.ranges: dict[Any, tuple[float, float]] = {}
        self._recording: dict[Any, list[tuple[float, float, np.ndarray]]] | None = None
        self._hook()
        self._calibrate(calibration[:RANGE_IMAGES])

    def _fold_batch_norm(self) -> None:
        """Each (convolution, batch norm) pair becomes the folded kernel and a bias-only batch norm."""
        import keras

        from sensorium.export.bias_correction import _targets

        for conv, bn in _targets(self.model):
            if bn is None:
                continue
            if not (bn.center and bn.scale):
                raise SystemExit(f"int8_sensitivity: batch norm {bn.name} without centre and scale is not simulated")
            gamma, beta, mean, var = (np.asarray(v, np.float64) for v in bn.get_weights())
            s = gamma / np.sqrt(var + bn.epsilon)  # (C,) per output channel
            weights = conv.get_weights()
            kernel = np.asarray(weights[0], np.float64)
            depthwise = isinstance(conv, keras.layers.DepthwiseConv2D)  # (kh, kw, C, 1) else (kh, kw, in, C)
            weights[0] = (kernel * (s.reshape(1, 1, -1, 1) if depthwise else s)).astype(np.float32)
            conv.set_weights(weights)
            bn.set_weights([np.ones_like(gamma, np.float32), (beta - mean * s).astype(np.float32),
                            np.zeros_like(mean, np.float32), np.full_like(var, 1 - bn.epsilon, np.float32)])

    def _kernel(self, layer: Any, axis: int) -> Any:
        """The layer's kernel, or with `weights` on, rounded as TFLite's int8 weights (computed once)."""
        from sensorium.export.bias_correction import quantize_weights

        if not self.weights:
            return layer.kernel
        if id(layer) not in self._rounded:
            self._rounded[id(layer)] = quantize_weights(np.asarray(layer.kernel), axis).astype(np.float32)
        return self._rounded[id(layer)]

    def _site(self, x: Any, key: Any) -> Any:
        import tensorflow as tf

        if self._recording is not None:
            v = np.asarray(x, np.float64).ravel()
            items = self._recording.setdefault(key, [])
            rng = np.random.default_rng(len(items))
            items.append((float(v.min()), float(v.max()), v[rng.integers(0, v.size, SAMPLES_PER_IMAGE)]))
            return x
        if not self.activations or (self.only is not None and key != self.only):
            return x
        low, high = self.ranges[key]
        return tf.quantization.fake_quant_with_min_max_args(x, min=low, max=high, num_bits=8)

    def _hook(self) -> None:
        import keras

        from sensorium.models.blocks.conv import ConvBNAct, InvertedResidual

        known = (keras.Model, keras.layers.InputLayer, keras.layers.BatchNormalization, keras.layers.Dropout,
                 keras.layers.Rescaling)  # composites, folded or identity at inference, or the exact input map
        qualified = _qualified_names(self.model)
        for layer in self.model._flatten_layers(include_self=False):
            call = layer.call
            if isinstance(layer, keras.layers.DepthwiseConv2D):
                def run(x, *a, _l=layer, **kw):
                    return keras.ops.depthwise_conv(x, self._kernel(_l, 2), strides=_l.strides, padding=_l.padding,
                                                    dilation_rate=_l.dilation_rate)
            elif isinstance(layer, keras.layers.Conv2D):
                if layer.use_bias or layer.activation not in (None, keras.activations.linear):
                    raise SystemExit(f"int8_sensitivity: convolution {layer.name} with a bias or an activation "
                                     "is not simulated")

                def run(x, *a, _l=layer, **kw):
                    return keras.ops.conv(x, self._kernel(_l, -1), strides=_l.strides, padding=_l.padding,
                                          dilation_rate=_l.dilation_rate)
            elif isinstance(layer, keras.layers.Dense):
                if layer.activation not in (None, keras.activations.linear):
                    raise SystemExit(f"int8_sensitivity: dense layer {layer.name} with an activation is not simulated")
                self.names[id(layer)] = f"{qualified[id(layer)]} (logits)"

                def run(x, *a, _l=layer, **kw):
                    y = keras.ops.matmul(x, self._kernel(_l, -1))
                    return self._site(y + _l.bias if _l.use_bias else y, id(_l))
            elif isinstance(layer, InvertedResidual):
                self.names[id(layer)] = f"{qualified[id(layer)]} residual sum"

                def run(x, *a, _l=layer, _c=call, **kw):
                    y = _c(x, *a, **kw)
                    return self._site(y, id(_l)) if _l.residual else y
            elif isinstance(layer, ConvBNAct) and layer.act is None:  # a linear projection's output
                self.names[id(layer)] = f"{qualified[id(layer)]} output"

                def run(x, *a, _l=layer, _c=call, **kw):
                    return self._site(_c(x, *a, **kw), id(_l))
            elif isinstance(layer, (keras.layers.Activation, keras.layers.GlobalAveragePooling2D)):
                if "softmax" in str(getattr(layer, "activation", "")):
                    continue  # float in an int8 file of many classes
                self.names[id(layer)] = qualified[id(layer)]

                def run(x, *a, _l=layer, _c=call, **kw):
                    return self._site(_c(x, *a, **kw), id(_l))
            elif isinstance(layer, (ConvBNAct, *known)) or layer.__class__.__module__.startswith("sensorium"):
                continue  # composites of the above, or float preprocessing and metadata
            else:
                raise SystemExit(f"int8_sensitivity: layer {layer.name} ({type(layer).__name__}) is not simulated")
            layer.call = run

    def _calibrate(self, images: np.ndarray) -> None:
        from sensorium.export.activation_ranges import mse_range

        self._recording = {}
        try:
            for image in images:
                self.model(image[None], training=False)
        finally:
            recorded, self._recording = self._recording, None
        for key, items in recorded.items():
            low, high = min(i[0] for i in items), max(i[1] for i in items)
            self.ranges[key] = mse_range(np.concatenate([i[2] for i in items]), low, high)

    def predict(self, images: np.ndarray) -> np.ndarray:
        return np.concatenate([np.asarray(self.model(images[i:i + BATCH], training=False))
                               for i in range(0, len(images), BATCH)])


def _qualified_names(model: Any) -> dict[int, str]:
    """id(layer) -> its name inside the blocks that hold it ("stage2_block1/depthwise_act"): Keras names
    repeat from block to block. Models (the backbone's network) add no prefix."""
    import keras

    names: dict[int, str] = {}

    def walk(layer: Any, prefix: str) -> None:
        for child in layer._flatten_layers(include_self=False, recursive=False):
            name = f"{prefix}{child.name}"
            names[id(child)] = name
            walk(child, prefix if isinstance(child, keras.Model) else f"{name}/")

    walk(model, "")
    return names


def compare(reference: np.ndarray, probs: np.ndarray) -> tuple[float, float]:
    """(top-1 agreement, mean KL(reference || probs)) of two (N, classes) probability arrays."""
    kl = np.sum(reference * (np.log(reference + 1e-12) - np.log(probs + 1e-12)), axis=1)
    return float(np.mean(reference.argmax(1) == probs.argmax(1))), float(np.mean(kl))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="assets/models/imagenet", help="run directory or .keras file")
    parser.add_argument("--out", help="folder for the calibration and parity images (default: temporary)")
    parser.add_argument("--top", type=int, default=10, help="tensors listed, the costliest first (0: all)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    from int8_agreement import load_check_set

    source, _, calibration, parity = load_check_set(args.model, args.out, "int8-sensitivity-")
    reference = source.model.predict(parity, batch_size=32, verbose=0)
    sim = Int8Simulation(source.model, calibration)

    rows = []
    for label, weights, activations in (("float, bias-corrected (no rounding)", False, False),
                                        ("int8 weights only", True, False),
                                        ("int8 activations only", False, True),
                                        ("int8 weights and activations", True, True)):
        sim.weights, sim.activations = weights, activations
        rows.append((label, *compare(reference, sim.predict(parity))))
    sim.weights = sim.activations = True
    base_kl = rows[1][2]
    sites = []
    for key in sim.ranges:
        sim.only = key
        agreement, kl = compare(reference, sim.predict(parity))
        sites.append((kl - base_kl, agreement, sim.names.get(key, str(key)), sim.ranges[key]))
    sim.only = None
    sites.sort(key=lambda s: -s[0])

    print(f"| simulated on {len(parity)} parity images | top-1 agreement | mean KL |")
    print("|---|---|---|")
    for label, agreement, kl in rows:
        print(f"| {label} | {agreement:.3f} | {kl:.4f} |")
    print(f"\n| tensor quantised alone (on int8 weights; {len(sites)} tensors) | range | agreement | KL added |")
    print("|---|---|---|---|")
    for added, agreement, name, (low, high) in sites[:args.top or None]:
        print(f"| {name} | {low:.2f} .. {high:.2f} | {agreement:.3f} | {added:+.4f} |")
    total = sum(max(s[0], 0.0) for s in sites)
    print(f"\nsum of the KL added one tensor at a time: {total:.4f} "
          f"(all at once: {rows[3][2] - base_kl:+.4f} over weights only)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
