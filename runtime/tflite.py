"""A Sensorium `.tflite`: the flatbuffer, the files packed inside it, and the interpreter that runs it.

Packed files: labels, tokenizers and `sensorium.json` travel inside the model as a zip archive appended
to the flatbuffer. This is how the TFLite metadata format packs its associated files (the official
metadata populator opens the model with `zipfile.ZipFile(path, "a")` and stores the files
uncompressed), so Android's `MetadataExtractor.getAssociatedFile(name)` and this module read them back.
Interpreters ignore the trailing archive.

The interpreter comes from ai-edge-litert, else tflite-runtime; `EdgeModel` only moves tensors
(quantises inputs, resizes dynamic dimensions such as batch and waveform length, dequantises outputs).
No TensorFlow is imported here, so a phone-class board can use it.
"""
from __future__ import annotations

import io
import json
import logging
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from sensorium.runtime.errors import MissingExtraError, ModelError, native_stderr_silenced

log = logging.getLogger(__name__)

# === Packed files ===
MANIFEST_NAME = "sensorium.json"


class AssociatedFilesError(ValueError):
    """The model's associated files are missing or unreadable."""


def pack(model_bytes: bytes, files: dict[str, bytes]) -> bytes:
    """Return `model_bytes` with `files` appended as a stored (uncompressed) zip archive."""
    if has_files(model_bytes):
        raise AssociatedFilesError("the model already carries associated files")
    buf = io.BytesIO(model_bytes)
    buf.seek(0, io.SEEK_END)
    with zipfile.ZipFile(buf, mode="a", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))  # reproducible bytes
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            zf.writestr(info, files[name])
    return buf.getvalue()


def has_files(model_bytes: bytes) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(model_bytes)) as zf:
            return bool(zf.namelist())
    except zipfile.BadZipFile:
        return False


# Caps on what a .tflite may carry (an untrusted file must not make the reader decompress gigabytes):
MAX_MODEL_BYTES = 2**31 - 1  # the flatbuffer itself: flatbuffers cannot address more
MAX_PACKED_FILES = 64  # ours carry 2-4 (sensorium.json, labels.txt, tokenizer models)
MAX_PACKED_FILE_BYTES = 64 * 2**20  # a tokenizer or a label list of a 100,000-class model fits easily
MAX_PACKED_TOTAL_BYTES = 256 * 2**20
MAX_MANIFEST_BYTES = 2**20  # sensorium.json is a few KB


def _read_members(zf: zipfile.ZipFile) -> dict[str, bytes]:
    """Every member of an appended archive, each read with a running byte count against the caps
    (the sizes in a zip's directory are claims; decompression is stopped at the cap whatever they say)."""
    infos = zf.infolist()
    if len(infos) > MAX_PACKED_FILES:
        raise AssociatedFilesError(f"{len(infos)} packed files, over the limit of {MAX_PACKED_FILES}")
    files: dict[str, bytes] = {}
    total = 0
    for info in infos:
        if info.is_dir():
            continue
        cap = MAX_MANIFEST_BYTES if info.filename == MANIFEST_NAME else MAX_PACKED_FILE_BYTES
        if info.file_size > cap:
            raise AssociatedFilesError(f"packed file {info.filename!r} is {info.file_size:,} bytes, over the limit "
                                       f"of {cap:,}")
        with zf.open(info) as member:
            data = member.read(cap + 1)
        if len(data) > cap:
            raise AssociatedFilesError(f"packed file {info.filename!r} expands past the limit of {cap:,} bytes")
        total += len(data)
        if total > MAX_PACKED_TOTAL_BYTES:
            raise AssociatedFilesError(f"packed files over the limit of {MAX_PACKED_TOTAL_BYTES:,} bytes in all")
        files[info.filename] = data
    return files


def _split(fh: Any, size: int) -> tuple[int, dict[str, bytes]]:
    """(length of the flatbuffer, packed files) of an open `.tflite`; the flatbuffer is not read."""
    try:
        with zipfile.ZipFile(fh) as zf:
            start = min((i.header_offset for i in zf.infolist()), default=size)
            return start, _read_members(zf)
    except zipfile.BadZipFile:
        return size, {}
    except (zipfile.LargeZipFile, OSError, KeyError, ValueError, EOFError, NotImplementedError) as exc:
        if isinstance(exc, AssociatedFilesError):
            raise
        raise AssociatedFilesError(f"unreadable associated files ({str(exc)[:200]})") from None
    except Exception as exc:  # noqa: BLE001 - zlib.error, struct.error and the like from a crafted archive
        raise AssociatedFilesError(f"unreadable associated files ({type(exc).__name__})") from None


def read_all(model: bytes | str | Path) -> dict[str, bytes]:
    """Every associated file of a `.tflite` (path or bytes) -> {name: bytes}; {} when there are none."""
    if isinstance(model, (bytes, bytearray)):
        return _split(io.BytesIO(bytes(model)), len(model))[1]
    path = Path(model)
    with open(path, "rb") as fh:
        return _split(fh, path.stat().st_size)[1]


def read_manifest(files: dict[str, bytes]) -> dict[str, Any]:
    """The `sensorium.json` among associated files, parsed (a JSON object, not too deep)."""
    if MANIFEST_NAME not in files:
        raise AssociatedFilesError(f"no {MANIFEST_NAME} among the model's associated files")
    try:
        manifest = json.loads(files[MANIFEST_NAME].decode("utf-8"))
    except RecursionError:
        raise AssociatedFilesError(f"{MANIFEST_NAME} is nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise AssociatedFilesError(f"{MANIFEST_NAME} is not valid JSON ({str(exc)[:120]})") from None
    if not isinstance(manifest, dict):
        raise AssociatedFilesError(f"{MANIFEST_NAME} is a JSON {type(manifest).__name__}, not an object")
    return manifest


def flatbuffer_part(model_bytes: bytes) -> bytes:
    """The model without its appended archive (what the interpreter actually reads)."""
    start, _ = _split(io.BytesIO(model_bytes), len(model_bytes))
    return model_bytes[:start]


# === The interpreter ===
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
            "no TFLite interpreter is installed: pip install ai-edge-litert (wheels for Linux x86_64 and "
            "aarch64, Windows x64, macOS on Apple silicon), or on other Linux boards pip install "
            "\"sensorium[tflite-runtime]\"; Intel Macs have neither: run Sensorium in a Linux container") from None


def read_tflite(path: Path) -> tuple[bytes, dict[str, bytes], dict[str, Any]]:
    """(flatbuffer bytes, associated files, sensorium.json) of a `.tflite`; one-line ModelErrors.

    Only the flatbuffer and the capped packed files are read: an appended archive, however large it
    claims or turns out to be, costs no more memory than the caps."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise ModelError(f"{path}: no such model file") from None
    except IsADirectoryError:
        raise ModelError(f"{path}: is a folder, not a .tflite file") from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot read ({exc.strerror or exc})") from None
    with fh:
        size = Path(path).stat().st_size
        if fh.read(8)[4:8] != b"TFL3":
            raise ModelError(f"{path}: not a TFLite model (no TFL3 flatbuffer identifier)")
        try:
            start, files = _split(fh, size)
            manifest = read_manifest(files) if files else {}
        except AssociatedFilesError as exc:
            raise ModelError(f"{path}: {exc}") from None
        if start > MAX_MODEL_BYTES:
            raise ModelError(f"{path}: the model is {start:,} bytes, over the flatbuffer limit of "
                             f"{MAX_MODEL_BYTES:,}")
        fh.seek(0)
        data = fh.read(start)
    return data, files, manifest


class EdgeModel:
    """A loaded `.tflite` with its packed files (`manifest`: sensorium.json, `files`: all).

    Single-input models are called directly (`model(x)`); models with several entry points (a
    translator's `encode` and `decode_step`) through `signature(name)`."""

    def __init__(self, path: str | Path, *, num_threads: int | None = None) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise ModelError(f"{self.path}: the edge runtime takes a .tflite file, not a folder")
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

    def require_task(self, task: str) -> None:
        """A ModelError unless the file's sensorium.json says it serves `task`."""
        if self.task != task:
            what = f"a '{self.task}' model" if self.task else "not a Sensorium model (no sensorium.json inside)"
            raise ModelError(f"{self.path} is {what}, not '{task}'")

    def signature(self, name: str) -> Callable[..., dict[str, np.ndarray]]:
        """The runner of the TFLite signature `name` (keyword inputs -> dict of outputs)."""
        keys = set(self.interpreter.get_signature_list())
        if name not in keys:
            raise ModelError(f"{self.path}: no signature '{name}' (it has: {', '.join(sorted(keys)) or 'none'})")
        try:
            with native_stderr_silenced():
                return self.interpreter.get_signature_runner(name)
        except (ValueError, RuntimeError) as exc:
            raise ModelError(self._load_error(exc)) from None

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
        """The class labels packed in `labels.txt` (else listed in sensorium.json); ModelError if unreadable."""
        if "labels.txt" in self.files:
            try:
                return self.files["labels.txt"].decode("utf-8").splitlines()
            except UnicodeDecodeError as exc:
                raise ModelError(f"{self.path}: labels.txt is not UTF-8 text (byte {exc.start})") from None
        labels = self.manifest.get("labels")
        if labels is not None and not (isinstance(labels, list) and all(isinstance(x, str) for x in labels)):
            raise ModelError(f"{self.path}: sensorium.json's labels are not a list of strings")
        return labels

    @property
    def input_dtype(self) -> np.dtype:
        return np.dtype(self.input["dtype"])

    def _quantize(self, x: np.ndarray) -> np.ndarray:
        """Input -> the input tensor's dtype. An array already of a quantised tensor's integer dtype is
        taken as the quantised values themselves: the raw uint8 pixels of an image model, whose input
        quantisation maps them into the network's range (scale 1 and zero point 0 when the network
        takes pixel values; (p - 127) / 128 for EfficientNet-Lite int8 files). Real values (floats)
        are quantised with the tensor's scale and zero point."""
        dtype = self.input_dtype
        scale, zero = self.input.get("quantization", (0.0, 0))
        if dtype in (np.int8, np.uint8, np.int16) and scale:
            if x.dtype == dtype:
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
