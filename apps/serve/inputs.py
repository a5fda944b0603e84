"""Request values -> the runtime predictors' `Item`s, checked against the server's caps.

One instance is what one record answers:

- image: `{"b64": "<base64 of a PNG, JPEG, ...>"}` or uint8 pixels as nested lists ([H][W], [H][W][1|3|4]);
- speech: `{"b64": "<base64 of a WAV, FLAC, OGG ... file>"}`, or a mono waveform as a list of floats in
  [-1, 1] at 16 kHz (the SavedModel's `waveform` input), or `{"waveform": [...], "sample_rate": N}`;
- sentiment, translation: a string.

Any instance may also be wrapped in its input's name (`{"image": ...}`, `{"text": ...}`: TF Serving's
named-input row form). A string is never read as a file name: nothing a request says can name a file or
folder on the server. Malformed instances are a 400 (`ApiError`), values over a cap a 413; values that
are well-formed but unusable (a corrupt image, an empty text) go on to the predictor, whose error record
becomes a 422 or, with `"errors": "record"`, that instance's record.
"""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from pathlib import PureWindowsPath
from typing import Any

import numpy as np

from sensorium.apps.serve.errors import ApiError
from sensorium.runtime.predictor import Item, Record

RATE = 16000  # what the speech predictors take

# The names an instance's value may be wrapped in, per task (ours first; then the SavedModels' input names).
INPUT_NAMES = {"image": ("image", "images", "pixels"), "speech": ("audio", "waveform"),
               "sentiment": ("text",), "translation": ("text",)}
# The signature names a request may give: the exported SavedModel's (docs/serving.md), so a request written
# for TF Serving (`"signature_name": "serving_bytes"`) works here too. The answer is always the task's record.
SIGNATURES = {"image": ("serving_default", "serving_bytes"), "speech": ("serving_default", "transcribe"),
              "sentiment": ("serving_default",), "translation": ("serving_default",)}


@dataclass(frozen=True)
class Limits:
    """The server's caps on what one request may carry."""

    max_body_bytes: int = 16 * 2**20  # a request body
    max_file_bytes: int = 12 * 2**20  # one image or recording (an upload, or one base64 value decoded)
    max_instances: int = 64  # instances in one :predict request
    max_text_chars: int = 10_000  # one text
    max_audio_seconds: float = 600.0  # one recording, checked from its header before decoding
    max_pixels: int = 4096 * 4096  # one pixel-array instance
    max_parts: int = 16  # parts of one multipart body

    def describe(self) -> dict[str, Any]:
        return {"max_body_bytes": self.max_body_bytes, "max_file_bytes": self.max_file_bytes,
                "max_instances": self.max_instances, "max_text_chars": self.max_text_chars,
                "max_audio_seconds": self.max_audio_seconds, "max_pixels": self.max_pixels}


def upload_name(filename: str | None, default: str) -> str:
    """What a record reports as "input" for an upload: the file name the client sent, without any
    folders (a browser's `C:\\fakepath\\x.png`, `../../x`), at most 200 characters."""
    name = PureWindowsPath(str(filename or "")).name.strip()  # splits on / and \
    name = "".join(ch for ch in name if ch.isprintable())[:200]
    return name if name not in ("", ".", "..") else default


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object with keys " + ", ".join(sorted(map(str, value))[:5]) if value else "an empty object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


def unwrap(task: str, value: Any, where: str) -> Any:
    """The value of a named-input instance (`{"image": {...}}` -> `{...}`); others as they are."""
    if isinstance(value, dict) and len(value) == 1:
        (key, inner), = value.items()
        if key in INPUT_NAMES[task]:
            return inner
        if key != "b64":
            raise ApiError(400, f"{where}: unknown input '{key}' for a {task} model (inputs: "
                                f"{', '.join(INPUT_NAMES[task])})")
    return value


def b64_bytes(value: Any, limits: Limits, where: str) -> bytes:
    """The bytes of a `{"b64": "..."}` value (standard or URL-safe alphabet, padding optional)."""
    text = value.get("b64") if isinstance(value, dict) else None
    if not isinstance(text, str):
        raise ApiError(400, f'{where}: "b64" must be a string of base64, got {_kind(text)}')
    if len(text) > (limits.max_file_bytes + 2) // 3 * 4 + 4:
        raise ApiError(413, f"{where}: about {len(text) * 3 // 4:,} bytes of base64 data is over the limit of "
                            f"{limits.max_file_bytes:,} bytes")
    text = text.strip().translate(str.maketrans("-_", "+/"))
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(400, f"{where}: invalid base64 ({exc})") from None


def _pixels(value: list, limits: Limits, where: str) -> np.ndarray:
    try:
        array = np.asarray(value)
    except (ValueError, TypeError):
        raise ApiError(400, f"{where}: pixel rows of different lengths (expected [H][W] or [H][W][C] uint8 "
                            "values)") from None
    if array.dtype.kind not in "iu":
        what = "a list of strings" if array.dtype.kind in "US" else f"{array.dtype} values"
        raise ApiError(400, f"{where}: pixels must be integers 0-255 (uint8), got {what}")
    shape = array.shape
    if (array.ndim not in (2, 3) or (array.ndim == 3 and shape[-1] not in (1, 3, 4)) or 0 in shape):
        raise ApiError(400, f"{where}: expected pixels of shape [H][W], [H][W][1], [H][W][3] or [H][W][4], "
                            f"got {list(shape)}")
    if shape[0] * shape[1] > limits.max_pixels:
        raise ApiError(413, f"{where}: {shape[1]}x{shape[0]} pixels is over the limit of {limits.max_pixels:,}")
    if array.min() < 0 or array.max() > 255:
        raise ApiError(400, f"{where}: pixel values must be within 0-255, got {array.min()}..{array.max()}")
    return array.astype(np.uint8)


def _waveform(samples: Any, rate: Any, limits: Limits, where: str) -> tuple[np.ndarray, int]:
    if isinstance(rate, bool) or not isinstance(rate, int) or not 1000 <= rate <= 384_000:
        raise ApiError(400, f"{where}: sample_rate must be an integer number of Hz (1000 to 384000), got {rate!r}")
    if not isinstance(samples, list) or not samples:
        raise ApiError(400, f"{where}: expected a waveform as a non-empty list of numbers")
    if len(samples) > limits.max_audio_seconds * rate:
        raise ApiError(413, f"{where}: {len(samples) / rate:.0f} s of audio is over the limit of "
                            f"{limits.max_audio_seconds:g} s")
    try:
        wave = np.asarray(samples, dtype=np.float32)
    except (ValueError, TypeError):
        raise ApiError(400, f"{where}: a waveform is a flat list of numbers in [-1, 1]") from None
    if wave.ndim != 1:
        raise ApiError(400, f"{where}: expected a mono waveform (a flat list), got shape {list(wave.shape)}")
    if not np.all(np.isfinite(wave)):
        raise ApiError(400, f"{where}: the waveform holds NaN or infinite samples")
    return wave, rate


def _text(value: Any, limits: Limits, where: str) -> str:
    if not isinstance(value, str):
        raise ApiError(400, f"{where}: expected a text (a string), got {_kind(value)}")
    if len(value) > limits.max_text_chars:
        raise ApiError(413, f"{where}: a text of {len(value):,} characters is over the limit of "
                            f"{limits.max_text_chars:,}")
    return value


def instance_item(task: str, value: Any, index: int, limits: Limits, where: str | None = None) -> Item:
    """One JSON instance of a :predict request -> an Item named by its index (a text by itself, as the
    CLI and the Python API name texts). Audio stays encoded bytes here (see `decode_audio`). `where`
    names the value in error messages (default "instance INDEX")."""
    where = where or f"instance {index}"
    value = unwrap(task, value, where)
    if task in ("sentiment", "translation"):
        text = _text(value, limits, where)
        return Item(text, text)
    if isinstance(value, dict) and set(value) == {"b64"}:
        return Item(b64_bytes(value, limits, where), index)
    if task == "image":
        if isinstance(value, list):
            return Item(_pixels(value, limits, where), index)
        if isinstance(value, str):
            raise ApiError(400, f'{where}: images come as {{"b64": "<base64>"}} or pixel arrays; a string is not '
                                "read (a request never names a file on the server)")
        raise ApiError(400, f'{where}: expected an image as {{"b64": "<base64>"}} or uint8 pixels [H][W][C], got '
                            f"{_kind(value)}")
    if task == "speech":
        if isinstance(value, list):
            return Item(_waveform(value, RATE, limits, where), index)
        if isinstance(value, dict) and "waveform" in value and set(value) <= {"waveform", "sample_rate"}:
            return Item(_waveform(value["waveform"], value.get("sample_rate", RATE), limits, where), index)
        if isinstance(value, str):
            raise ApiError(400, f'{where}: recordings come as {{"b64": "<base64 of a WAV, FLAC or OGG file>"}}; a '
                                "string is not read (a request never names a file on the server)")
        raise ApiError(400, f'{where}: expected a recording as {{"b64": "<base64>"}} or a waveform (a list of '
                            f"floats at 16 kHz), got {_kind(value)}")
    raise ApiError(400, f"{where}: this server cannot take {task} instances")


def predict_request(data: Any, limits: Limits, task: str) -> tuple[list[Any], str, str]:
    """(instances, "predictions" or "outputs", errors mode) of a parsed :predict body: TF Serving's row
    form `{"instances": [...]}` (answered as "predictions") or its columnar form `{"inputs": [...]}`
    ("outputs"), its optional "signature_name", and our `"errors": "raise" | "record"`."""
    if not isinstance(data, dict):
        raise ApiError(400, f'expected a JSON object like {{"instances": [...]}}, got {_kind(data)}')
    unknown = sorted(set(data) - {"instances", "inputs", "signature_name", "errors"})
    if unknown:
        raise ApiError(400, f"unknown field(s) {', '.join(map(repr, unknown))} (fields: instances or inputs, "
                            "signature_name, errors)")
    if ("instances" in data) == ("inputs" in data):
        raise ApiError(400, 'give exactly one of "instances" (a list, one entry per input) or "inputs"')
    key = "instances" if "instances" in data else "inputs"
    rows = data[key]
    if isinstance(rows, dict) and key == "inputs" and len(rows) == 1:
        rows = next(iter(rows.values()))  # columnar form with the input named
    if not isinstance(rows, list) or not rows:
        raise ApiError(400, f'"{key}" must be a non-empty list, got {_kind(rows)}')
    if len(rows) > limits.max_instances:
        raise ApiError(413, f"{len(rows)} instances is over the limit of {limits.max_instances} per request")
    signature = data.get("signature_name") or "serving_default"
    if signature not in SIGNATURES[task]:
        raise ApiError(400, f"unknown signature_name {str(signature)[:50]!r} (a {task} model has: "
                            f"{', '.join(SIGNATURES[task])})")
    errors = data.get("errors", "raise")
    if errors not in ("raise", "record"):
        raise ApiError(400, f'"errors" must be "raise" or "record", got {errors!r}')
    return rows, ("predictions" if key == "instances" else "outputs"), errors


def decode_audio(items: list[Item], limits: Limits) -> list[Item]:
    """Encoded recordings -> `(waveform, 16000)` items (blocking: run it off the event loop). A recording
    that cannot be decoded, or is over the length cap, becomes an item with its `error`."""
    from sensorium.runtime.audio_io import decode_audio_bytes
    from sensorium.runtime.errors import InputError

    out = []
    for item in items:
        if not isinstance(item.value, bytes) or item.error:
            out.append(item)
            continue
        name = item.name if isinstance(item.name, str) else f"instance {item.name}"
        try:
            wave = decode_audio_bytes(item.value, sample_rate=RATE, max_seconds=limits.max_audio_seconds, name=name)
            out.append(Item((wave, RATE), item.name))
        except InputError as exc:
            out.append(Item(None, item.name, error=str(exc)))
    return out


def error_message(record: Record, label: str | None) -> str:
    """The one-line message of a failed record, naming its input (`label`: "instance 3", the upload's
    file name, or None for a single text) once."""
    error = str(record.get("error") or "failed")
    if error.startswith("<bytes>: "):  # what the image decoder calls bytes
        error = error[len("<bytes>: "):]
    return f"{label}: {error}" if label and not error.startswith(f"{label}:") else error


def tidy_error(record: Record, label: str) -> Record:
    """A failed record whose message names its input `<bytes>` names it by `label` instead."""
    error = record.get("error")
    if not record.get("ok", True) and isinstance(error, str) and error.startswith("<bytes>: "):
        return {**record, "error": f"{label}: {error[len('<bytes>: '):]}"}
    return record
