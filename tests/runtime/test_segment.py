"""Cutting long recordings at silences: bounded segments, cuts inside pauses, quiet parts dropped."""
from __future__ import annotations

import numpy as np

from sensorium.runtime.segment import split_at_silences

RATE = 16000


def _speechlike(seconds: float, rng) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * 300 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype("float32")


def test_short_recording_is_one_segment_and_silence_is_none():
    rng = np.random.default_rng(0)
    wave = _speechlike(3.0, rng)
    assert [(s.start, s.end) for s in split_at_silences(wave, RATE)] == [(0, len(wave))]
    assert split_at_silences(np.zeros(RATE * 30, "float32"), RATE) == []
    assert split_at_silences(np.zeros(0, "float32"), RATE) == []


def test_long_recording_is_cut_in_the_pauses():
    rng = np.random.default_rng(1)
    pause = (rng.normal(0, 0.001, int(0.8 * RATE))).astype("float32")
    parts, bounds, pos = [], [], 0
    for seconds in (6.0, 7.5, 5.0, 8.0):
        speech = _speechlike(seconds, rng)
        parts += [speech, pause]
        bounds.append((pos, pos + len(speech)))
        pos += len(speech) + len(pause)
    wave = np.concatenate(parts)
    segments = split_at_silences(wave, RATE, max_seconds=10.0)
    assert all(s.end - s.start <= 10 * RATE for s in segments)
    for start, end in bounds:  # every stretch of speech lies inside one segment: no cut in a word
        assert any(s.start <= start + 400 and end - 400 <= s.end for s in segments), (start, end)
    assert len(segments) == 4  # the trailing pause is dropped


def test_speech_without_pauses_is_still_bounded():
    wave = _speechlike(50.0, np.random.default_rng(2))
    segments = split_at_silences(wave, RATE, max_seconds=12.0)
    assert all(s.end - s.start <= 12 * RATE for s in segments)
    assert segments[0].start == 0 and segments[-1].end == len(wave)
    assert all(a.end == b.start for a, b in zip(segments, segments[1:]))  # contiguous, nothing lost
