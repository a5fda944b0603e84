"""Keras -> TFLite with builtin ops only: float32, dynamic-range, float16 and full-integer int8.

Conversion goes through a SavedModel written by `keras.export.ExportArchive` with an explicit input
signature (converting a Keras 3 model's concrete function directly can leave weights as variables
and produce a file that runs but returns NaN: the parity check would catch it, this path avoids it).

Layers that say `keep_float = True` (`ContentFraming`: coordinates and interpolation weights lose
pixels in 8 bits) stay float32 in an int8 file: selective quantisation, every other op int8, still a
uint8 input. So does the softmax of a classifier with more than MAX_UINT8_CLASSES classes, whose
output is then float32 probabilities instead of uint8.

A model that begins with a per-tensor affine map of its pixels, p -> a * (p - z) with an integer z
(`ImagePreprocessing` and a backbone's own input rescaling), has that map folded into the int8 input
tensor's quantisation (scale a, zero point z) instead of quantised as ops: the first convolution then
sees the exact pixel values, as in the reference EfficientNet-Lite int8 files. The input is still the
raw uint8 pixels. Before calibration, the batch-norm statistics of that clone are moved to cancel the
mean shift that int8 weights cause (`bias_correction`); after it, the activation ranges are clipped
where that lowers their quantisation error (`activation_ranges`).
"""
from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from sensorium.runtime.errors import ModelError, native_stderr_silenced

log = logging.getLogger(__name__)

QUANTIZATIONS = ("none", "dynamic", "float16", "int8")
# Weight-only int8 (image models): int8 kernels, float32 compute (`weight_storage`), bias-corrected like int8
WEIGHT_ONLY = "int8-weights"
FILE_SUFFIX = {"none": "float32", "dynamic": "dynamic", "float16": "float16", "int8": "int8",
               WEIGHT_ONLY: "int8-weights"}
MIN_CALIBRATION = 200
# An int8 classifier with more classes than this computes its softmax in float32 and outputs float32
# probabilities: a uint8 output's 1/256 steps tie the top classes of a 1000-class model on most photos.
MAX_UINT8_CLASSES = 32


def _float_input_clone(model: Any) -> Any:
    """The same model taking float32 pixel values: full-integer quantisation then gives a uint8 input
    with scale 1 and zero point 0 (exactly the pixel values), and no float Cast at the front."""
    import keras

    inp = model.inputs[0]
    clone = keras.models.clone_model(model, input_tensors=keras.Input(tuple(inp.shape[1:]), dtype="float32",
                                                                      name=inp.name))
    clone.set_weights(model.get_weights())
    return clone


def _pixel_affine(layer: Any, size: tuple[int, int]) -> tuple[float, float] | None:
    """(a, b) when `layer` maps each value v of its (B, *size, 3) input to a * v + b for every channel."""
    import keras

    if hasattr(layer, "pixel_affine"):
        return layer.pixel_affine(size)
    if isinstance(layer, keras.layers.Rescaling) and np.ndim(layer.scale) == 0 and np.ndim(layer.offset) == 0:
        return float(layer.scale), float(layer.offset)
    return None


def _chain(model: Any) -> list[Any] | None:
    """The layers of a functional model after its input when each feeds only the next, else None."""
    layers = list(model.layers)
    if len(model.inputs) != 1 or len(model.outputs) != 1 or not layers or layers[-1].output is not model.outputs[0]:
        return None
    previous = model.inputs[0]
    for layer in layers[1:]:
        if len(layer._inbound_nodes) != 1 or layer.input is not previous:
            return None
        previous = layer.output
    return layers[1:]


def _fold_pixel_affine(model: Any, input_shape: tuple[int, ...]) -> tuple[Any, float, int] | None:
    """(clone, a, z) when `model` (uint8 pixels p (B, H, W, 3)) first maps p to a * (p - z), z an
    integer in 0..255, through affine layers (its preprocessing, then the leading layers of an embedded
    backbone network): `clone` is a copy of the rest, taking a * (p - z) as float32. Else None."""
    import keras

    if len(input_shape) != 3 or input_shape[-1] != 3:
        return None
    size = (int(input_shape[0]), int(input_shape[1]))
    layers = _chain(model)
    if layers is None:
        return None
    layers = [layer for layer in layers if not getattr(layer, "identity_at_inference", False)]
    a, b, found = 1.0, 0.0, False
    while layers and (step := _pixel_affine(layers[0], size)) is not None:
        a, b, found = step[0] * a, step[0] * b + step[1], True
        layers.pop(0)
    front = None
    network = getattr(layers[0], "network", None) if layers else None
    inner = _chain(network) if isinstance(network, keras.Model) else None
    if inner:
        start = 0
        while start < len(inner) and (step := _pixel_affine(inner[start], size)) is not None:
            a, b, found, start = step[0] * a, step[0] * b + step[1], True, start + 1
        if start:
            front = keras.Model(inner[start].input, network.outputs[0]) if start < len(inner) else None
            if front is None:
                return None
            layers.pop(0)
    if not found or a <= 0:
        return None
    zero = -b / a
    if abs(zero - round(zero)) > 1e-3 or not 0 <= round(zero) <= 255:
        return None
    x = inputs = keras.Input(tuple(input_shape), dtype="float32", name=model.inputs[0].name)
    if front is not None:
        x = front(x, training=False)
    for layer in layers:
        x = layer(x, training=False)
    return keras.Model(inputs, x, name=f"{model.name}_folded"), a, int(round(zero))


def convert(model: Any, *, input_shape: tuple[int, ...], quantize: str = "none",
            calibration: Iterable[np.ndarray] | None = None, output_name: str = "probabilities") -> bytes:
    """Convert `model` (input uint8 (B, *input_shape)) to a `.tflite` flatbuffer.

    `calibration` yields single samples (1, *input_shape) for int8 (at least MIN_CALIBRATION of them)
    and for WEIGHT_ONLY (its bias correction; without samples, plain rounding).
    Raises ModelError naming the ops when the model cannot be expressed in TFLite builtins.
    """
    import keras
    import tensorflow as tf

    if quantize == WEIGHT_ONLY:
        return _weight_only(model, input_shape, list(calibration or []), output_name)
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"unknown quantization {quantize!r}; known: {', '.join(QUANTIZATIONS)}, {WEIGHT_ONLY}")
    int8 = quantize == "int8"
    source = _float_input_clone(model) if int8 else model
    dtype = tf.float32 if int8 else tf.as_dtype(model.inputs[0].dtype)
    folded = _fold_pixel_affine(source, tuple(input_shape)) if int8 else None
    pixel_map = None
    if folded is not None:  # the clone takes a * (p - z); the input tensor's quantisation maps p to it
        source, scale, zero = folded
        pixel_map = (scale, zero)
        log.info("int8: the input map (p - %d) * %.6g is the input tensor's quantisation", zero, scale)
    samples = list(calibration or []) if int8 else []
    if int8 and len(samples) < MIN_CALIBRATION:
        raise ModelError(f"int8 needs at least {MIN_CALIBRATION} calibration samples, got {len(samples)}")

    def model_input(sample: np.ndarray) -> np.ndarray:
        """A calibration sample as the (clone) model's float32 input."""
        if pixel_map is None:
            return sample.astype(np.float32)
        return np.float32(pixel_map[0]) * (sample.astype(np.float32) - pixel_map[1])

    if int8:  # on the clone: the model itself is not changed
        from sensorium.export.bias_correction import MAX_IMAGES, correct_bias

        correct_bias(source, np.concatenate([model_input(s) for s in samples[:MAX_IMAGES]]))

    def serve(x):
        return {output_name: source(x, training=False)}

    archive = keras.export.ExportArchive()
    archive.track(source)
    archive.add_endpoint("serving_default", tf.function(serve),
                         input_signature=[tf.TensorSpec((None, *input_shape), dtype, name="pixels")])

    def full_integer(converter: Any) -> None:
        converter.representative_dataset = lambda: ([model_input(s)] for s in samples)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.uint8

    keep_float = [layer.name for layer in source.layers if getattr(layer, "keep_float", False)] if int8 else []
    if int8 and int(source.outputs[0].shape[-1]) > MAX_UINT8_CLASSES:
        keep_float.append(output_name)  # the softmax: 1/256 steps cannot rank a thousand classes
    return convert_archive(archive, quantize, configure=full_integer if int8 else None, keep_float=keep_float,
                           output_name=output_name, pixel_map=pixel_map)


def _weight_only(model: Any, input_shape: tuple[int, ...], samples: list[np.ndarray], output_name: str) -> bytes:
    """WEIGHT_ONLY: a clone of `model` whose batch-norm statistics are moved to cancel the mean shift of
    int8 weights and whose depthwise and stem kernels are rounded to lower their error, both measured on
    the calibration `samples` (`bias_correction`, as for int8), converted as float32 with its kernels
    then stored as per-channel int8 (`weight_storage`)."""
    import keras

    from sensorium.export.bias_correction import MAX_IMAGES, correct_bias
    from sensorium.export.weight_storage import int8_weight_storage

    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    if samples:
        correct_bias(clone, np.concatenate(samples[:MAX_IMAGES]))
    flatbuffer = convert(clone, input_shape=input_shape, quantize="none", output_name=output_name)
    stored, count = int8_weight_storage(flatbuffer)
    log.info("%s: %d kernels stored as int8", WEIGHT_ONLY, count)
    return stored


def _tensor_names(flatbuffer: bytes) -> tuple[list[str], list[str]]:
    """The tensor names of a `.tflite` model, and those of its outputs."""
    import warnings

    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
        interpreter = tf.lite.Interpreter(model_content=flatbuffer)
        return ([t["name"] for t in interpreter.get_tensor_details()],
                [t["name"] for t in interpreter.get_output_details()])


def convert_archive(archive: Any, variant: str, *, signature_keys: list[str] | None = None,
                    configure: Callable[[Any], None] | None = None, keep_float: list[str] | None = None,
                    output_name: str = "probabilities", pixel_map: tuple[float, int] | None = None) -> bytes:
    """A `keras.export.ExportArchive` -> `.tflite` bytes with TFLite builtin ops only: written to a
    temporary SavedModel, converted as float32 (`none`), dynamic-range or float16; `configure(converter)`
    adds what a caller needs beyond that (int8 calibration data and types). A model that builtins cannot
    express is a one-line ModelError naming its ops. `keep_float` names layers whose ops stay float32 in
    an int8 conversion, and `pixel_map` (a, z) is the map of uint8 pixels p to the float input a * (p - z)
    that an int8 file's input quantisation takes on (see `_int8`)."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix="sensorium-tflite-") as tmp:
        archive.write_out(tmp, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp, signature_keys=signature_keys)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if variant != "none":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if variant == "float16":
            converter.target_spec.supported_types = [tf.float16]
        if configure is not None:
            configure(converter)
        try:
            with native_stderr_silenced():  # the converter prints its MLIR diagnostics natively
                if variant == "int8":
                    return _int8(tmp, converter, keep_float or [], output_name, pixel_map)
                return converter.convert()
        except Exception as exc:  # ConverterError lists the ops that have no builtin kernel
            raise ModelError(_builtin_error(exc)) from None


def _int8(saved_model: str, converter: Any, keep_float: list[str], output_name: str,
          pixel_map: tuple[float, int] | None = None) -> bytes:
    """Full-integer int8 (uint8 pixels in), except for ops left in float32: those of the `keep_float`
    layers, and the op that makes the output when `output_name` is among them. With none to keep and no
    `pixel_map`, the converter's own full-integer path (uint8 out); otherwise calibration, then TFLite's
    MLIR quantiser with those nodes deny-listed (what its quantisation debugger does), then uint8 in and
    uint8 out (float32 out when a float op makes the output). With `pixel_map` (a, z) the input's
    calibrated range is set to exactly a * (0 - z) .. a * (255 - z), so that the uint8 input tensor has
    scale a and zero point z: its values are the raw pixels. On that path every other activation range
    is clipped to its smallest quantisation error (`activation_ranges`)."""
    import tensorflow as tf
    from tensorflow.lite.python import convert as tflite_convert
    from tensorflow.lite.python import util as tflite_util

    deny: list[str] = []
    if keep_float:
        scopes = re.compile("|".join(rf"/{re.escape(name)}(?:_\d+)?/" for name in keep_float))
        names, outputs = _tensor_names(tf.lite.TFLiteConverter.from_saved_model(saved_model).convert())
        deny = [name for name in names if scopes.search(name)]
        if output_name in keep_float:  # the op that makes the output (the softmax) is named after the signature
            deny += outputs
    if not deny and pixel_map is None:
        return converter.convert()
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    converter._experimental_calibrate_only = True  # calibration statistics only; quantised below
    calibrated = converter.convert()
    if pixel_map is not None:
        scale, zero = pixel_map
        calibrated = _set_input_range(calibrated, scale * (0 - zero), scale * (255 - zero))
    if converter.representative_dataset is not None:
        from sensorium.export.activation_ranges import clip_ranges

        dataset = converter.representative_dataset  # the converter wraps the callable it was given
        calibrated = clip_ranges(calibrated, getattr(dataset, "input_gen", dataset)())
    if deny:
        log.info("int8: %d ops of %s kept in float32", len(deny), ", ".join(keep_float))
    quantized = tflite_convert.mlir_quantize(calibrated, denylisted_nodes=deny)  # float32 in and out
    try:  # uint8 pixels in, as every int8 file; uint8 out where the last op is quantised
        out = tflite_util.modify_model_io_type(quantized, tf.uint8, tf.uint8)
    except ValueError:  # the output comes from a float op (a kept-float softmax): float32 probabilities
        out = tflite_util.modify_model_io_type(quantized, tf.uint8, tf.float32)
    if pixel_map is not None:
        _check_input_quantization(out, *pixel_map)
    return out


def _set_input_range(flatbuffer: bytes, low: float, high: float) -> bytes:
    """A calibrated (not yet quantised) model with its input tensor's recorded range set to [low, high]."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    graph = model.subgraphs[0]
    stats = graph.tensors[graph.inputs[0]].quantization
    if stats is None or stats.min is None or len(stats.min) != 1:
        raise ModelError("int8: the calibrated model has no range for its input")
    stats.min, stats.max = [float(low)], [float(high)]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _check_input_quantization(flatbuffer: bytes, scale: float, zero: int) -> None:
    """ModelError unless the uint8 input tensor has exactly `scale` and zero point `zero`."""
    import warnings

    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        detail = tf.lite.Interpreter(model_content=flatbuffer).get_input_details()[0]
    got_scale, got_zero = detail["quantization"]
    if detail["dtype"] != np.uint8 or got_zero != zero or abs(got_scale - scale) > 1e-6 * scale:
        raise ModelError(f"int8: the input quantisation came out as scale {got_scale:.6g}, zero point {got_zero}, "
                         f"not the model's pixel map {scale:.6g}, {zero}")


def _builtin_error(exc: Exception) -> str:
    text = str(exc)
    ops = sorted(set(re.findall(r"\btf\.([A-Z][A-Za-z0-9_]*)", text)))  # TensorFlow op names are CamelCase
    if ops:
        return f"the model uses ops that TFLite builtins cannot express: {', '.join(ops)} (no file was written)"
    first = next((line.strip() for line in text.splitlines() if "error" in line.lower()), text.strip()[:200])
    return f"TFLite conversion failed: {first[:300]} (no file was written)"


def calibration_batches(images: np.ndarray, count: int, seed: int = 0) -> list[np.ndarray]:
    """`count` single-sample arrays (1, ...) drawn without replacement from `images`."""
    if len(images) < count:
        count = len(images)
    idx = np.random.default_rng(seed).choice(len(images), size=count, replace=False)
    return [images[i : i + 1] for i in np.sort(idx)]


CalibrationFn = Callable[[], Iterable[np.ndarray]]
