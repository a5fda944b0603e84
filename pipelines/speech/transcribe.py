"""Transcribe audio files: long recordings are read in windows, cut at silences into bounded
segments, transcribed in batches and joined; one result object per input (the `--json` contract)."""
from __future__ import annotations

import logging
from typing import Any, Iterable, Iterator

from sensorium.runtime.errors import DataError
from sensorium.runtime.paths import expand_paths, input_error

log = logging.getLogger(__name__)

RATE = 16000
WINDOW_SECONDS = 600.0  # a long file is decoded 10 minutes at a time (bounded memory for hours of audio)
MAX_SECONDS = 12 * 3600.0  # longer inputs are refused


def audio_inputs(inputs: Iterable[str]) -> list[str]:
    from sensorium.runtime.audio_io import is_audio_path

    return expand_paths(inputs, is_audio_path)


def transcribe_file(recognizer: Any, path: str, *, beam: int = 1, max_segment: float = 15.0,
                    batch_size: int = 16) -> dict[str, Any]:
    """{"text", "duration", "segments": [{"start", "end", "text"}]} for one file (DataError if unreadable)."""
    from sensorium.runtime.audio_io import audio_duration, load_audio
    from sensorium.runtime.segment import split_at_silences

    duration = audio_duration(path)
    if duration <= 0:
        raise DataError(f"{path}: empty audio file (no samples)")
    if duration > MAX_SECONDS:
        raise DataError(f"{path}: {duration / 3600:.1f} h is longer than the {MAX_SECONDS / 3600:.0f} h limit; split it first")
    segments: list[dict[str, Any]] = []
    offset = 0.0
    while True:
        wave = load_audio(path, offset_seconds=offset, duration_seconds=WINDOW_SECONDS)
        if len(wave) == 0:
            break
        pieces = split_at_silences(wave, RATE, max_seconds=max_segment)
        last_window = offset + len(wave) / RATE >= duration - 1e-3
        carry = None
        if not last_window and len(pieces) > 1:  # the last piece may run on into the next window
            carry = pieces[-1].start
            pieces = pieces[:-1]
        texts = recognizer.transcribe([wave[p.start : p.end] for p in pieces], beam=beam, batch_size=batch_size)
        for piece, text in zip(pieces, texts):
            start, end = piece.seconds(RATE)
            segments.append({"start": round(offset + start, 3), "end": round(offset + end, 3), "text": text})
        if last_window:
            break
        offset += (carry if carry is not None else len(wave)) / RATE
    text = " ".join(s["text"] for s in segments if s["text"])
    return {"text": text, "duration": round(duration, 3), "segments": segments}


def transcribe_paths(recognizer: Any, inputs: Iterable[str], *, beam: int = 1, max_segment: float = 15.0,
                     batch_size: int = 16) -> Iterator[dict[str, Any]]:
    """Yield one result per input, in order; failures are results with "ok": false and one-line "error"."""
    from sensorium.runtime.audio_io import AUDIO_EXTENSIONS

    for item in audio_inputs(inputs):
        error = input_error(item, "audio files (" + ", ".join(sorted(AUDIO_EXTENSIONS)) + ")")
        if error:
            yield {"input": item, "ok": False, "error": error}
            continue
        try:
            result = transcribe_file(recognizer, item, beam=beam, max_segment=max_segment, batch_size=batch_size)
        except DataError as exc:
            yield {"input": item, "ok": False, "error": str(exc)}
            continue
        yield {"input": item, "ok": True, **result}
