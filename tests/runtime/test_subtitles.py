"""Transcripts as txt, json, SubRip and WebVTT files."""
from __future__ import annotations

import json

import pytest

from sensorium.runtime.subtitles import render, to_srt, to_vtt

RECORD = {"input": "talk.wav", "ok": True, "text": "hello there general", "duration": 3725.5,
          "segments": [{"start": 0.0, "end": 1.2344, "text": "hello there"}, {"start": 1.5, "end": 2.0, "text": ""},
                       {"start": 3661.0015, "end": 3725.5, "text": " general "}]}


def test_srt_numbers_cues_and_uses_commas():
    assert to_srt(RECORD) == ("1\n00:00:00,000 --> 00:00:01,234\nhello there\n\n"
                              "2\n01:01:01,002 --> 01:02:05,500\ngeneral\n\n")


def test_vtt_has_its_header_and_dots():
    assert to_vtt(RECORD) == ("WEBVTT\n\n00:00:00.000 --> 00:00:01.234\nhello there\n\n"
                              "01:01:01.002 --> 01:02:05.500\ngeneral\n\n")


def test_txt_and_json_and_unknown_formats():
    assert render(RECORD, "txt") == "hello there general\n"
    assert json.loads(render(RECORD, "json")) == RECORD
    assert to_srt({"segments": []}) == "" and to_vtt({"segments": []}) == "WEBVTT\n\n"
    with pytest.raises(ValueError, match="unknown transcript format"):
        render(RECORD, "ass")
