"""Cutting long recordings at silences: bounded segments, cuts inside pauses, quiet parts dropped."""
from __future__ import annotations

import numpy as np
import pytest

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


def test_speech_onset_keeps_a_margin_before_the_first_loud_frame():
    from sensorium.runtime.segment import speech_onset

    rng = np.random.default_rng(3)
    speech = _speechlike(1.0, rng)
    floor = rng.normal(0, 3e-4, int(0.5 * RATE)).astype("float32")  # -60 dB-ish noise floor
    wave = np.concatenate([floor, speech, floor])
    onset = speech_onset(wave, RATE, margin=0.08)
    assert abs(onset / RATE - (0.5 - 0.08)) <= 0.03  # 30 ms analysis windows
    assert speech_onset(wave, RATE, margin=0.0) / RATE == pytest.approx(0.5, abs=0.03)
    assert speech_onset(wave, RATE, margin=1.0) == 0  # the margin is longer than the lead-in
    silent_lead = np.concatenate([np.zeros(RATE // 4, "float32"), speech])
    assert abs(speech_onset(silent_lead, RATE, margin=0.05) / RATE - 0.20) <= 0.03
    assert speech_onset(speech, RATE) == 0  # speech from the start
    assert speech_onset(np.zeros(RATE, "float32"), RATE) == 0  # nothing loud: keep everything
    assert speech_onset(floor, RATE) == 0
    assert speech_onset(np.zeros(0, "float32"), RATE) == 0


def test_trailing_quiet_is_topped_up_to_the_tail():
    from sensorium.runtime.segment import pad_trailing_quiet, speech_end

    rng = np.random.default_rng(6)
    speech = _speechlike(1.0, rng)
    floor = rng.normal(0, 3e-4, int(0.1 * RATE)).astype("float32")
    short_tail = np.concatenate([floor, speech, floor])  # ends 0.1 s after the speech
    assert abs(speech_end(short_tail, RATE) / RATE - 1.1) <= 0.03
    padded = pad_trailing_quiet(short_tail, RATE, tail=0.3)
    assert np.array_equal(padded[: len(short_tail)], short_tail)  # the clip itself is untouched
    assert not padded[len(short_tail):].any()  # digital silence after it
    assert abs((len(padded) - speech_end(short_tail, RATE)) / RATE - 0.3) <= 0.001
    assert len(pad_trailing_quiet(padded, RATE, tail=0.3)) == len(padded)  # topped up once is enough
    long_tail = np.concatenate([speech, np.zeros(RATE // 2, "float32")])
    assert len(pad_trailing_quiet(long_tail, RATE, tail=0.3)) == len(long_tail)  # 0.5 s follows already
    assert abs(len(pad_trailing_quiet(speech, RATE, tail=0.3)) / RATE - 1.3) <= 0.001  # speech to the end
    for quiet in (np.zeros(RATE, "float32"), floor, np.zeros(0, "float32")):  # nothing loud: as it is
        assert speech_end(quiet, RATE) is None and len(pad_trailing_quiet(quiet, RATE, tail=0.3)) == len(quiet)


INFO = {"frame_length": 400, "frame_step": 160, "subsampling": 4, "alphabet": "ab"}


def _fake_recognizer(info: dict, seen: list):
    """A SpeechRecognizer whose model outputs blanks and records each batch's length in `seen`."""
    from sensorium.runtime.speech import SpeechRecognizer

    def run_batch(x):  # (B, S) -> (B, T', 3): all blank
        seen.append(x.shape[1])
        out = np.full((x.shape[0], max(1, ((x.shape[1] - 400) // 160 + 4) // 4), 3), -10.0, "float32")
        out[..., 0] = 0.0
        return out

    return SpeechRecognizer(run_batch, info, "fake", vocabulary="none", language_model="none")


def test_recognizer_can_cut_leading_quiet_before_the_model():
    from sensorium.runtime.errors import UsageError

    seen: list = []
    rng = np.random.default_rng(4)
    wave = np.concatenate([rng.normal(0, 3e-4, RATE).astype("float32"), _speechlike(1.0, rng)])  # 1 s lead-in
    asr = _fake_recognizer(INFO, seen).configure(tail_silence="none")
    asr.log_probs([wave])
    assert seen[-1] == len(wave)  # by default everything is kept
    asr.configure(lead_silence=0.08).log_probs([wave])
    assert abs(seen[-1] / RATE - (1.0 + 0.08)) <= 0.03  # 1 s of speech + 80 ms of the lead-in
    asr.configure(lead_silence="none").log_probs([wave])
    assert seen[-1] == len(wave)
    asr.configure(lead_silence=0.3).log_probs([wave])
    assert abs(seen[-1] / RATE - 1.3) <= 0.03
    for bad in ("x", -0.1, 11, True, [1]):
        with pytest.raises(UsageError, match="lead_silence"):
            asr.configure(lead_silence=bad)


def test_recognizer_cuts_as_the_model_was_trained_by_default():
    """The default, "model", follows the model's recorded `lead_silence` (how its training clips were
    cut), keeps everything for a model without one, and a corrupt recorded value is a ModelError."""
    from sensorium.runtime.errors import ModelError

    seen: list = []
    rng = np.random.default_rng(5)
    wave = np.concatenate([rng.normal(0, 3e-4, RATE).astype("float32"), _speechlike(1.0, rng)])  # 1 s lead-in
    trained_cut = _fake_recognizer({**INFO, "lead_silence": 0.2}, seen).configure(tail_silence="none")
    trained_cut.log_probs([wave])
    assert abs(seen[-1] / RATE - 1.2) <= 0.03
    trained_cut.configure(lead_silence="none").log_probs([wave])
    assert seen[-1] == len(wave)
    trained_cut.configure(lead_silence="model").log_probs([wave])
    assert abs(seen[-1] / RATE - 1.2) <= 0.03
    _fake_recognizer(INFO, seen).configure(tail_silence="none").log_probs([wave])
    assert seen[-1] == len(wave)
    for corrupt in ("soon", -1, 99):
        with pytest.raises(ModelError, match="lead_silence"):
            _fake_recognizer({**INFO, "lead_silence": corrupt}, seen).configure(beam=1)


def test_recognizer_tops_up_trailing_quiet_as_the_model_records():
    """The default, "model", tops clips that end less than the model's recorded `tail_silence` (how its
    training clips ended) after their speech up with silence, after the lead cut; a model without one
    and "none" get clips as they come; a number is used as given; bad values are one error."""
    from sensorium.runtime.errors import ModelError, UsageError

    seen: list = []
    rng = np.random.default_rng(7)
    wave = np.concatenate([rng.normal(0, 3e-4, RATE).astype("float32"), _speechlike(1.0, rng)])  # ends on speech
    asr = _fake_recognizer({**INFO, "tail_silence": 0.3}, seen)
    asr.log_probs([wave])
    assert abs(seen[-1] / RATE - (2.0 + 0.3)) <= 0.001
    asr.configure(lead_silence=0.08).log_probs([wave])
    assert abs(seen[-1] / RATE - (0.08 + 1.0 + 0.3)) <= 0.03  # cut first, then topped up
    asr.configure(lead_silence="none", tail_silence=0.5).log_probs([wave])
    assert abs(seen[-1] / RATE - 2.5) <= 0.001
    asr.configure(tail_silence="none").log_probs([wave])
    assert seen[-1] == len(wave)
    _fake_recognizer(INFO, seen).log_probs([wave])  # records nothing: as it comes
    assert seen[-1] == len(wave)
    for bad in ("x", -0.1, 11, True, [1]):
        with pytest.raises(UsageError, match="tail_silence"):
            asr.configure(tail_silence=bad)
    with pytest.raises(ModelError, match="tail_silence"):
        _fake_recognizer({**INFO, "tail_silence": "long"}, seen).configure(beam=1)
