"""Keras -> TFLite with builtin ops only: float32, dynamic-range, float16 and full-integer int8.

Conversion goes through a SavedModel written by `keras.export.ExportArchive` with an explicit input
signature (converting a Keras 3 model's concrete function directly can leave weights as variables
and produce a file that runs but returns NaN: the parity check would catch it, this path avoids it).
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

    return convert_archive(archive, quantize, configure=full_integer if int8 else None)


def convert_archive(archive: Any, variant: str, *, signature_keys: list[str] | None = None,
                    configure: Callable[[Any], None] | None = None) -> bytes:
    """A `keras.export.ExportArchive` -> `.tflite` bytes with TFLite builtin ops only: written to a
    temporary SavedModel, converted as float32 (`none`), dynamic-range or float16; `configure(converter)`
    adds what a caller needs beyond that (int8 calibration data and types). A model that builtins cannot
    express is a one-line ModelError naming its ops."""
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
                return converter.convert()
        except Exception as exc:  # ConverterError lists the ops that have no builtin kernel
            raise ModelError(_builtin_error(exc)) from None


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
