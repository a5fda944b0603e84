"""Transcript normalisation: one rule set for corpus, training and WER."""
from __future__ import annotations

import pytest

from sensorium.runtime.transcripts import ALPHABET, normalize_transcript, number_to_words


@pytest.mark.parametrize("text, expected", [
    ("Call 112, now!", "call one hundred twelve now"),
    ("The 21st of May", "the twenty first of may"),
    ("0815 and 3.14", "zero eight one five and three point one four"),
    ("Don't STOP — café naïve", "don't stop cafe naive"),
    ("I\u2019m 40", "i'm forty"),
    ("12345", "one two three four five"),
    ("  multiple   spaces\tand\nlines  ", "multiple spaces and lines"),
    ("'quoted' words", "quoted words"),
    ("2000 1005 90 13th 3rd 2nd", "two thousand one thousand five ninety thirteenth third second"),
    ("", ""),
    ("?!...", ""),
    ("😀 only emoji", "only emoji"),
    ("Straße, Ærø, Łódź", "strasse aero lodz"),
])
def test_normalize_transcript(text, expected):
    assert normalize_transcript(text) == expected


def test_normal_form_is_stable_and_in_the_alphabet():
    samples = ["Turn ON the 2 lights at 7:30!", "Straße über 9999", "x" * 10 + " 1st"]
    for text in samples:
        once = normalize_transcript(text)
        assert normalize_transcript(once) == once
        assert set(once) <= set(ALPHABET)


def test_number_words():
    assert number_to_words(0) == "zero" and number_to_words(19) == "nineteen"
    assert number_to_words(9999) == "nine thousand nine hundred ninety nine"
    with pytest.raises(ValueError):
        number_to_words(10000)
