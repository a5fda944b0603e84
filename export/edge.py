"""The edge runner: runs Sensorium `.tflite` files with ai-edge-litert (or tflite-runtime), numpy and
the files packed inside the model. It imports no TensorFlow, so a phone-class board can use it.

Task-specific input handling lives in TensorFlow-free modules beside it (image decoding in
`sensorium.pipelines.common.images`; speech in `sensorium.export.edge_speech`, which feeds one
waveform of any length and decodes CTC), so this module only moves tensors: quantises inputs,
resizes dynamic dimensions (batch, waveform length), dequantises outputs.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from sensorium.export.associated_files import AssociatedFilesError, read_all, read_manifest
from sensorium.pipelines.common.errors import MissingExtraError, ModelError
from sensorium.pipelines.common.stdio import native_stderr_silenced

log = logging.getLogger(__name__)


def interpreter_class() -> tuple[Any, str]:
    """The TFLite Interpreter class and the runtime's name: ai-edge-litert first, then tflite-runtime."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai-edge-litert"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter

        return Interpreter, "tflite-runtime"
    except ImportError:
        raise MissingExtraError(
            "no TFLite runtime is installed: pip install ai-edge-litert (or tflite-runtime where "
            "ai-edge-litert has no wheel)") from None


def read_tflite(path: Path) -> tuple[bytes, dict[str, bytes], dict[str, Any]]:
    """(flatbuffer bytes, associated files, sensorium.json) of a `.tflite`; one-line ModelErrors."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ModelError(f"{path}: no such model file") from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelError(f"{path}: not a TFLite model (no TFL3 flatbuffer identifier)")
    try:
        files = read_all(data)
        return data, files, (read_manifest(files) if files else {})
    except AssociatedFilesError as exc:
        raise ModelError(f"{path}: {exc}") from None


class EdgeModel:
    """A loaded `.tflite` with its associated files (`manifest`: sensorium.json, `files`: all)."""

    def __init__(self, path: str | Path, *, num_threads: int | None = None) -> None:
        self.path = Path(path)
        data, self.files, self.manifest = read_tflite(self.path)
        Interpreter, self.runtime = interpreter_class()
        try:
            with native_stderr_silenced():  # the runtime prints an "XNNPACK delegate" banner
                self.interpreter = Interpreter(model_content=data, num_threads=num_threads)
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(self._load_error(exc)) from None
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self._batch = int(self.input["shape"][0])

    def _load_error(self, exc: Exception) -> str:
        text = " ".join(str(exc).split())
        if self.runtime == "tflite-runtime" and ("version" in text.lower() or "Didn't find op" in text):
            return (f"{self.path}: tflite-runtime cannot run this model ({text[:200]}); it rejects newer op "
                    "versions (e.g. dynamic-range fully-connected): install ai-edge-litert instead")
        return f"{self.path}: corrupt or unsupported TFLite model ({text[:200]})"

    @property
    def task(self) -> str | None:
        return self.manifest.get("task")

    @property
    def labels(self) -> list[str] | None:
        if "labels.txt" in self.files:
            return self.files["labels.txt"].decode("utf-8").splitlines()
        return self.manifest.get("labels")

    @property
    def input_dtype(self) -> np.dtype:
        return np.dtype(self.input["dtype"])

    def _quantize(self, x: np.ndarray) -> np.ndarray:
        """Real-valued input (e.g. uint8 pixel values) -> the input tensor's dtype."""
        dtype = self.input_dtype
        scale, zero = self.input.get("quantization", (0.0, 0))
        if dtype in (np.int8, np.uint8, np.int16) and scale:
            if x.dtype == dtype and scale == 1.0 and zero == 0:
                return x
            info = np.iinfo(dtype)
            return np.clip(np.round(x.astype(np.float32) / scale + zero), info.min, info.max).astype(dtype)
        return x.astype(dtype, copy=False)

    def _dequantize(self, y: np.ndarray) -> np.ndarray:
        scale, zero = self.output.get("quantization", (0.0, 0))
        if y.dtype in (np.int8, np.uint8, np.int16) and scale:
            return (y.astype(np.float32) - zero) * scale
        return y.astype(np.float32, copy=False)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Run one batch: x (B, ...) real values -> float32 outputs (B, ...)."""
        x = np.asarray(x)
        if x.shape[0] != self._batch or tuple(x.shape[1:]) != tuple(self.input["shape"][1:]):
            expected = tuple(int(d) for d in self.input["shape_signature"][1:])
            if any(d > 0 and d != s for d, s in zip(expected, x.shape[1:])) or len(expected) != x.ndim - 1:
                raise ModelError(f"{self.path}: input of shape {x.shape[1:]} does not fit the model's "
                                 f"{tuple(self.input['shape_signature'][1:])}")
            self.interpreter.resize_tensor_input(self.input["index"], list(x.shape))
            self.interpreter.allocate_tensors()
            self.input = self.interpreter.get_input_details()[0]
            self.output = self.interpreter.get_output_details()[0]
            self._batch = x.shape[0]
        self.interpreter.set_tensor(self.input["index"], self._quantize(x))
        self.interpreter.invoke()
        return self._dequantize(self.interpreter.get_tensor(self.output["index"]))
