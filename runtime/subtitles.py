"""Transcripts as files: plain text, JSON, SubRip (.srt) and WebVTT (.vtt) from a transcription record
(`{"text", "duration", "segments": [{"start", "end", "text"}]}`), as whisper users expect."""
from __future__ import annotations

import json
from typing import Any

FORMATS = ("txt", "json", "srt", "vtt")


def _timestamp(seconds: float, separator: str) -> str:
    millis = max(0, int(round(float(seconds) * 1000)))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _cues(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Segments with text (silent ones make no cue)."""
    return [s for s in record.get("segments") or [] if str(s.get("text", "")).strip()]


def to_srt(record: dict[str, Any]) -> str:
    """SubRip: numbered cues `HH:MM:SS,mmm --> HH:MM:SS,mmm`, a blank line after each."""
    return "".join(f"{i}\n{_timestamp(s['start'], ',')} --> {_timestamp(s['end'], ',')}\n{s['text'].strip()}\n\n"
                   for i, s in enumerate(_cues(record), start=1))


def to_vtt(record: dict[str, Any]) -> str:
    """WebVTT: a `WEBVTT` header, then cues `HH:MM:SS.mmm --> HH:MM:SS.mmm`."""
    return "WEBVTT\n\n" + "".join(f"{_timestamp(s['start'], '.')} --> {_timestamp(s['end'], '.')}\n"
                                  f"{s['text'].strip()}\n\n" for s in _cues(record))


def render(record: dict[str, Any], fmt: str) -> str:
    """The file contents of one transcription record in `fmt` (txt, json, srt or vtt)."""
    if fmt == "txt":
        return record.get("text", "") + "\n"
    if fmt == "json":
        return json.dumps(record, ensure_ascii=False, indent=2) + "\n"
    if fmt == "srt":
        return to_srt(record)
    if fmt == "vtt":
        return to_vtt(record)
    raise ValueError(f"unknown transcript format {fmt!r}; known: {', '.join(FORMATS)}")
