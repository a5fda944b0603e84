"""Keras -> TFLite with builtin ops only: float32, dynamic-range, float16 and full-integer int8.

Conversion goes through a SavedModel written by `keras.export.ExportArchive` with an explicit input
signature (converting a Keras 3 model's concrete function directly can leave weights as variables
and produce a file that runs but returns NaN: the parity check would catch it, this path avoids it).

Layers that say `keep_float = True` (`ContentFraming`: coordinates and interpolation weights lose
pixels in 8 bits) stay float32 in an int8 file: selective quantisation, every other op int8, still a
uint8 input. So does the softmax of a classifier with more than MAX_UINT8_CLASSES classes, whose
output is then float32 probabilities instead of uint8.
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
FILE_SUFFIX = {"none": "float32", "dynamic": "dynamic", "float16": "float16", "int8": "int8"}
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


def convert(model: Any, *, input_shape: tuple[int, ...], quantize: str = "none",
            calibration: Iterable[np.ndarray] | None = None, output_name: str = "probabilities") -> bytes:
    """Convert `model` (input uint8 (B, *input_shape)) to a `.tflite` flatbuffer.

    `calibration` yields single samples (1, *input_shape) for int8 (at least MIN_CALIBRATION of them).
    Raises ModelError naming the ops when the model cannot be expressed in TFLite builtins.
    """
    import keras
    import tensorflow as tf

    if quantize not in QUANTIZATIONS:
        raise ValueError(f"unknown quantization {quantize!r}; known: {', '.join(QUANTIZATIONS)}")
    int8 = quantize == "int8"
    source = _float_input_clone(model) if int8 else model
    dtype = tf.float32 if int8 else tf.as_dtype(model.inputs[0].dtype)

    def serve(x):
        return {output_name: source(x, training=False)}

    archive = keras.export.ExportArchive()
    archive.track(source)
    archive.add_endpoint("serving_default", tf.function(serve),
                         input_signature=[tf.TensorSpec((None, *input_shape), dtype, name="pixels")])

    def full_integer(converter: Any) -> None:
        samples = list(calibration or [])
        if len(samples) < MIN_CALIBRATION:
            raise ModelError(f"int8 needs at least {MIN_CALIBRATION} calibration samples, got {len(samples)}")
        converter.representative_dataset = lambda: ([s.astype(np.float32)] for s in samples)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.uint8

    keep_float = [layer.name for layer in source.layers if getattr(layer, "keep_float", False)] if int8 else []
    if int8 and int(source.outputs[0].shape[-1]) > MAX_UINT8_CLASSES:
        keep_float.append(output_name)  # the softmax: 1/256 steps cannot rank a thousand classes
    return convert_archive(archive, quantize, configure=full_integer if int8 else None, keep_float=keep_float,
                           output_name=output_name)


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
                    output_name: str = "probabilities") -> bytes:
    """A `keras.export.ExportArchive` -> `.tflite` bytes with TFLite builtin ops only: written to a
    temporary SavedModel, converted as float32 (`none`), dynamic-range or float16; `configure(converter)`
    adds what a caller needs beyond that (int8 calibration data and types). A model that builtins cannot
    express is a one-line ModelError naming its ops. `keep_float` names layers whose ops stay float32 in
    an int8 conversion (see `_int8`)."""
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
                    return _int8(tmp, converter, keep_float or [], output_name)
                return converter.convert()
        except Exception as exc:  # ConverterError lists the ops that have no builtin kernel
            raise ModelError(_builtin_error(exc)) from None


def _int8(saved_model: str, converter: Any, keep_float: list[str], output_name: str) -> bytes:
    """Full-integer int8 (uint8 pixels in), except for ops left in float32: those of the `keep_float`
    layers, and the op that makes the output when `output_name` is among them. With none to keep, the
    converter's own full-integer path (uint8 out); otherwise calibration, then TFLite's MLIR quantiser
    with those nodes deny-listed (what its quantisation debugger does), then uint8 in and uint8 out
    (float32 out when a float op makes the output)."""
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
    if not deny:
        return converter.convert()
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    converter._experimental_calibrate_only = True  # calibration statistics only; quantised below
    calibrated = converter.convert()
    log.info("int8: %d ops of %s kept in float32", len(deny), ", ".join(keep_float))
    quantized = tflite_convert.mlir_quantize(calibrated, denylisted_nodes=deny)  # float32 in and out
    try:  # uint8 pixels in, as every int8 file; uint8 out where the last op is quantised
        return tflite_util.modify_model_io_type(quantized, tf.uint8, tf.uint8)
    except ValueError:  # the output comes from a float op (a kept-float softmax): float32 probabilities
        return tflite_util.modify_model_io_type(quantized, tf.uint8, tf.float32)


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
