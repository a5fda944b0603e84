"""Safe audio decoding for untrusted files, without TensorFlow (the edge runner uses it too).

Every clip comes out as float32 mono in [-1, 1] at the requested sample rate (16 kHz by default):
any sample rate, any channel count (mixed down by averaging), integer or float PCM.

* Decoder: ``soundfile`` (libsndfile) for WAV, FLAC, OGG/Vorbis/Opus, AIFF, ... and MP3 (libsndfile
  >= 1.1, which the soundfile wheels bundle). Only for compressed containers libsndfile cannot read
  (``FALLBACK_EXTENSIONS``: MP3 on an old libsndfile, M4A/AAC, WMA) is ``audioread`` tried, which needs
  ffmpeg/GStreamer on the machine.
* Resampler: ``soxr`` at "HQ" quality (what ``librosa.resample(res_type="soxr_hq")`` runs), a
  dependency of the base install.
* Limits: ``max_seconds`` is checked from the header before any sample is decoded, and decoding
  stops one frame past the limit even when the header lies, so memory stays bounded. A long
  recording can be measured with ``audio_duration`` (header only) and read in windows with
  ``offset_seconds`` / ``duration_seconds``.

Every failure raises ``AudioDecodeError`` (a ``DataError``) with one line naming the file and the
reason. All-silent audio is valid; zero samples, NaN/inf samples and clips over the limit are not.
"""
from __future__ import annotations

import io
import logging
import math
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf

from sensorium.runtime.errors import InputError, MissingExtraError

logger = logging.getLogger(__name__)

DEFAULT_SAMPLE_RATE = 16000
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au", ".m4a")
# Containers libsndfile may not read; only these are handed to audioread (ffmpeg) on failure, so
# a corrupt WAV is reported as corrupt instead of being re-tried by a laxer decoder.
FALLBACK_EXTENSIONS = (".mp3", ".m4a", ".mp4", ".aac", ".wma")

_SOURCE = str | Path


class AudioDecodeError(InputError):
    """A file that is not decodable audio, or audio that breaks a limit (length, finiteness)."""


def is_audio_path(path: _SOURCE) -> bool:
    """True when the file name has an audio extension this module reads."""
    return Path(path).suffix.lower() in AUDIO_EXTENSIONS


def load_audio(
    path: _SOURCE,
    *,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    max_seconds: float | None = None,
    offset_seconds: float = 0.0,
    duration_seconds: float | None = None,
) -> np.ndarray:
    """Decode an audio file into float32 mono samples in [-1, 1] at ``sample_rate``, shape (n,).

    ``offset_seconds`` / ``duration_seconds`` select a window (seeking, not decoding, past the
    start); ``max_seconds`` limits the length of what is returned. Raises ``AudioDecodeError``.
    """
    name = str(path)
    _check_request(name, sample_rate, max_seconds, offset_seconds, duration_seconds)
    with _open_file(path) as fp:
        try:
            return _decode(fp, name, sample_rate, max_seconds, offset_seconds, duration_seconds)
        except _NotForSoundfile:
            pass
    return _decode_fallback(Path(path), name, sample_rate, max_seconds, offset_seconds, duration_seconds)


def decode_audio_bytes(
    data: bytes,
    *,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    max_seconds: float | None = None,
    offset_seconds: float = 0.0,
    duration_seconds: float | None = None,
    name: str = "<bytes>",
) -> np.ndarray:
    """``load_audio`` for an encoded file held in memory (an upload, a record of a dataset).

    ``name`` is used in error messages, and its extension (e.g. "clip.m4a") lets a format that
    libsndfile cannot read go to the audioread fallback through a temporary file.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise AudioDecodeError(f"{name}: expected encoded audio bytes, got {type(data).__name__}")
    _check_request(name, sample_rate, max_seconds, offset_seconds, duration_seconds)
    if len(data) == 0:
        raise AudioDecodeError(f"{name}: empty input (0 bytes)")
    try:
        return _decode(
            io.BytesIO(bytes(data)), name, sample_rate, max_seconds, offset_seconds, duration_seconds
        )
    except _NotForSoundfile:
        pass
    with tempfile.TemporaryDirectory(prefix="sensorium-audio-") as tmp:
        path = Path(tmp) / f"input{Path(name).suffix.lower()}"
        path.write_bytes(bytes(data))
        return _decode_fallback(path, name, sample_rate, max_seconds, offset_seconds, duration_seconds)


def audio_duration(path: _SOURCE) -> float:
    """Length of an audio file in seconds, read from its header (no sample is decoded)."""
    name = str(path)
    with _open_file(path) as fp:
        try:
            with _open_soundfile(fp, name) as f:
                frames, rate = _header_frames(f, name), f.samplerate
            return frames / rate
        except _NotForSoundfile:
            pass
    audioread = _import_audioread(name)
    try:
        with audioread.audio_open(str(path)) as f:
            return float(f.duration)
    except audioread.exceptions.NoBackendError:
        raise _no_backend(name) from None
    except (audioread.exceptions.DecodeError, OSError, EOFError) as exc:
        raise AudioDecodeError(f"{name}: not a readable audio file ({_one_line(exc)})") from None


# --------------------------------------------------------------------------------------- internals


class _NotForSoundfile(Exception):
    """libsndfile does not know the format and the extension names one audioread may decode."""


def _check_request(
    name: str, sample_rate: int, max_seconds: float | None, offset: float, duration: float | None
) -> None:
    if int(sample_rate) != sample_rate or sample_rate < 1:
        raise ValueError(f"sample_rate must be a positive integer, got {sample_rate}")
    if max_seconds is not None and not max_seconds > 0:
        raise ValueError(f"max_seconds must be > 0 or None, got {max_seconds}")
    if not offset >= 0:
        raise ValueError(f"offset_seconds must be >= 0, got {offset}")
    if duration is not None and not duration > 0:
        raise ValueError(f"duration_seconds must be > 0 or None, got {duration}")


def _open_file(path: _SOURCE) -> BinaryIO:
    """Open for reading, turning OS errors into one-line AudioDecodeErrors."""
    from sensorium.runtime.paths import open_input

    name = str(path)
    fp = open_input(path, folder="not an audio file", error=AudioDecodeError)
    if os.fstat(fp.fileno()).st_size == 0:
        fp.close()
        raise AudioDecodeError(f"{name}: empty file (0 bytes)")
    return fp


def _open_soundfile(fp: BinaryIO, name: str) -> sf.SoundFile:
    """Open with libsndfile; unknown formats go to the fallback when the extension allows it."""
    try:
        return sf.SoundFile(fp)
    except sf.LibsndfileError as exc:
        reason = _sndfile_reason(exc)
        if exc.code == 1:  # SF_ERR_UNRECOGNISED_FORMAT
            if Path(name).suffix.lower() in FALLBACK_EXTENSIONS:
                raise _NotForSoundfile from None
            raise AudioDecodeError(f"{name}: not an audio file ({reason})") from None
        raise AudioDecodeError(f"{name}: corrupt or unsupported audio header ({reason})") from None
    except (RuntimeError, ValueError, OSError, EOFError) as exc:
        raise AudioDecodeError(f"{name}: not a readable audio file ({_one_line(exc)})") from None


def _header_frames(f: sf.SoundFile, name: str) -> int:
    """Sample frames the header declares, warning when the file holds fewer than it says."""
    if f.samplerate < 1:
        raise AudioDecodeError(f"{name}: corrupt audio header (sample rate {f.samplerate} Hz)")
    for line in f.extra_info.splitlines():  # libsndfile's parse log, e.g. "data : 176400 (should be 956)"
        if line.startswith("data") and "(should be" in line:
            logger.warning("%s: truncated: the header declares more audio than the file holds (%s)", name,
                           line.strip())
            break
    return int(f.frames)


def _decode(
    fp: BinaryIO,
    name: str,
    sample_rate: int,
    max_seconds: float | None,
    offset: float,
    duration: float | None,
) -> np.ndarray:
    with _open_soundfile(fp, name) as f:
        native_rate, channels = int(f.samplerate), int(f.channels)
        total = _header_frames(f, name)
        if total == 0:
            raise AudioDecodeError(f"{name}: no audio samples (empty)")
        start, wanted = _window(name, native_rate, total, offset, duration, max_seconds)
        if start:
            f.seek(start)
        try:
            # (wanted, channels) float32; int PCM is scaled to [-1, 1) by libsndfile
            data = f.read(frames=wanted, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as exc:
            reason = _sndfile_reason(exc) if isinstance(exc, sf.LibsndfileError) else _one_line(exc)
            raise AudioDecodeError(f"{name}: corrupt audio data ({reason})") from None
        except MemoryError:
            raise AudioDecodeError(
                f"{name}: not enough memory to decode {_seconds(wanted / native_rate)} of {channels}-channel "
                "audio; pass max_seconds or read it in windows (offset_seconds, duration_seconds)"
            ) from None
    return _finish(data, name, native_rate, channels, sample_rate, max_seconds)


def _window(
    name: str, rate: int, total: int, offset: float, duration: float | None, max_seconds: float | None
) -> tuple[int, int]:
    """(first frame, frames to read) for the requested window, checked against ``max_seconds``.

    The frame count reads one past the limit, so ``_finish`` still catches a header that understates.
    """
    start = int(round(offset * rate))
    if start >= total:
        raise AudioDecodeError(
            f"{name}: offset {offset:g} s is past the end of the audio ({_seconds(total / rate)})"
        )
    available = total - start
    wanted = available if duration is None else min(available, max(1, int(round(duration * rate))))
    if max_seconds is not None:
        if wanted / rate > max_seconds:
            raise _too_long(name, wanted / rate, max_seconds)
        wanted = min(wanted, int(math.floor(max_seconds * rate)) + 1)
    return start, wanted


def _finish(
    data: np.ndarray, name: str, native_rate: int, channels: int, sample_rate: int, max_seconds: float | None
) -> np.ndarray:
    """(n, channels) float samples at ``native_rate`` -> checked float32 mono (m,) at ``sample_rate``."""
    if data.shape[0] == 0:
        raise AudioDecodeError(f"{name}: no audio samples (empty)")
    if max_seconds is not None and data.shape[0] / native_rate > max_seconds:
        raise _too_long(name, data.shape[0] / native_rate, max_seconds)
    if not np.isfinite(data).all():
        bad = int(np.count_nonzero(~np.isfinite(data)))
        raise AudioDecodeError(f"{name}: {bad} of {data.size} samples are NaN or infinite")
    mono = data.mean(axis=1, dtype=np.float32) if channels > 1 else data[:, 0]  # (n,)
    peak = float(np.max(np.abs(mono)))
    if peak > 1.0 + 1e-3:  # float files may exceed full scale; int PCM cannot
        logger.warning("%s: samples reach %.3f, beyond full scale; clipped to [-1, 1]", name, peak)
    mono = _resample(mono, native_rate, sample_rate, name)  # (m,)
    if mono.size == 0:
        raise AudioDecodeError(f"{name}: too short to resample ({data.shape[0]} samples at {native_rate} Hz)")
    mono = np.clip(mono, -1.0, 1.0, out=mono)  # also the resampler's overshoot around full scale
    logger.debug("%s: %d Hz x %d channel(s) -> %d samples at %d Hz", name, native_rate, channels,
                 mono.shape[0], sample_rate)
    return mono


def resample(y: np.ndarray, orig: int, target: int = 16000, name: str = "audio") -> np.ndarray:
    """Resample a mono float32 waveform (soxr at "HQ" quality)."""
    return _resample(np.asarray(y, dtype=np.float32), int(orig), int(target), name)


def _resample(y: np.ndarray, orig: int, target: int, name: str) -> np.ndarray:
    """(n,) float32 at ``orig`` Hz -> (about n * target / orig,) float32 at ``target`` Hz."""
    if orig == target:
        return np.array(y, dtype=np.float32, copy=True)
    try:
        import soxr
    except ImportError:
        raise MissingExtraError(f"{name}: resampling {orig} Hz to {target} Hz needs soxr: pip install soxr") from None
    return np.ascontiguousarray(soxr.resample(y, orig, target, quality="HQ"), dtype=np.float32)


def _decode_fallback(
    path: Path,
    name: str,
    sample_rate: int,
    max_seconds: float | None,
    offset: float,
    duration: float | None,
) -> np.ndarray:
    """Decode with audioread (ffmpeg, GStreamer, ...) a container libsndfile does not read."""
    audioread = _import_audioread(name)
    try:
        with audioread.audio_open(str(path)) as f:
            native_rate, channels = int(f.samplerate), int(f.channels)
            if native_rate < 1 or channels < 1:
                raise AudioDecodeError(
                    f"{name}: corrupt audio header ({native_rate} Hz, {channels} channels)"
                )
            total = int(round(float(f.duration or 0.0) * native_rate))  # 0: the header does not say
            if total:
                start, wanted = _window(name, native_rate, total, offset, duration, max_seconds)
                end: int | None = start + wanted
            else:
                start = int(round(offset * native_rate))
                end = None if duration is None else start + max(1, int(round(duration * native_rate)))
                if max_seconds is not None:
                    cap = start + int(math.floor(max_seconds * native_rate)) + 1
                    end = cap if end is None else min(end, cap)
            chunks, have = [], 0  # int16 interleaved buffers, decoded only up to `end` frames
            for buf in f:
                chunk = np.frombuffer(buf, dtype="<i2")
                chunks.append(chunk)
                have += chunk.size // channels
                if end is not None and have >= end:
                    break
    except AudioDecodeError:
        raise
    except audioread.exceptions.NoBackendError:
        raise _no_backend(name) from None
    except (audioread.exceptions.DecodeError, OSError, EOFError, ValueError) as exc:
        raise AudioDecodeError(f"{name}: not a readable audio file ({_one_line(exc)})") from None
    pcm = np.concatenate(chunks) if chunks else np.zeros(0, "<i2")
    pcm = pcm[: pcm.size - pcm.size % channels].reshape(-1, channels)  # (frames, channels)
    data = pcm[start:end].astype(np.float32) / 32768.0
    return _finish(data, name, native_rate, channels, sample_rate, max_seconds)


def _import_audioread(name: str):
    try:
        import audioread
    except ImportError:
        raise AudioDecodeError(
            f"{name}: libsndfile {sf.__libsndfile_version__} cannot read this format and audioread is not "
            "installed (pip install audioread, plus ffmpeg)"
        ) from None
    return audioread


def _no_backend(name: str) -> AudioDecodeError:
    return AudioDecodeError(
        f"{name}: not an audio file, or a format no decoder here reads (libsndfile "
        f"{sf.__libsndfile_version__} does not, and audioread has no backend for it: install ffmpeg)"
    )


def _too_long(name: str, seconds: float, limit: float) -> AudioDecodeError:
    return AudioDecodeError(
        f"{name}: audio is {_seconds(seconds)} long, over the limit of {_seconds(limit)}; "
        "split it into shorter clips"
    )


def _seconds(seconds: float) -> str:
    """12.5 -> '12.50 s'; 28800 -> '28800.00 s (8:00:00)'."""
    text = f"{seconds:.2f} s"
    if seconds >= 60:
        whole = int(seconds)
        text += f" ({whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d})"
    return text


def _sndfile_reason(exc: sf.LibsndfileError) -> str:
    """libsndfile's own reason without the "Error opening '<path>': " prefix."""
    reason = _one_line(getattr(exc, "error_string", "") or str(exc))
    for prefix in ("Error : ", "Error: "):
        reason = reason.removeprefix(prefix)
    return reason.rstrip(".") or f"libsndfile error {getattr(exc, 'code', '?')}"


def _one_line(exc: BaseException | str) -> str:
    text = str(exc).strip().splitlines()
    return " ".join(text[0].split()) if text else type(exc).__name__
