"""Vocabularies for constrained decoding: how files are read, and every bad file is one line."""
from __future__ import annotations

import pytest

from sensorium.runtime.errors import InputError
from sensorium.runtime.transcripts import ALPHABET
from sensorium.runtime.vocabulary import Vocabulary, words_of


def test_file_words_are_normalised_deduplicated_and_sorted(tmp_path):
    path = tmp_path / "words.txt"
    path.write_text("# digits and a command\nFive  nine\n\n  five\ndon't\ufeff\n\uff47\uff4f\n", encoding="utf-8")
    vocabulary = Vocabulary.from_file(path, ALPHABET)
    assert vocabulary.words == ("don't", "five", "go", "nine")  # NFKC folds the full-width "go"
    assert "five" in vocabulary and "fiv" not in vocabulary and len(vocabulary) == 4
    node = 0
    for c in "fiv":
        node = vocabulary.children[node][ALPHABET.index(c) + 1]
    assert not vocabulary.is_word[node]
    assert vocabulary.is_word[vocabulary.children[node][ALPHABET.index("e") + 1]]


@pytest.mark.parametrize(("content", "message"), [
    (b"", "no words"),
    (b"# only a comment\n\n", "no words"),
    (b"caf\xe9\n", "not UTF-8"),
    ("café\n".encode(), "not in the model's alphabet"),
    (b"call 911\n", "spell numbers as words"),
    (b"hello\x00world\n", "NUL"),
    (b"x" * 100 + b"\n", "characters long"),
])
def test_bad_files_are_one_line(tmp_path, content, message):
    path = tmp_path / "words.txt"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message) as info:
        Vocabulary.from_file(path, ALPHABET)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_missing_folder_and_oversized_files(tmp_path, monkeypatch):
    from sensorium.runtime import vocabulary as module

    with pytest.raises(InputError, match="does not exist"):
        Vocabulary.from_file(tmp_path / "missing.txt", ALPHABET)
    with pytest.raises(InputError, match="not a file"):
        Vocabulary.from_file(tmp_path, ALPHABET)
    big = tmp_path / "big.txt"
    big.write_text("word\n" * 100)
    monkeypatch.setattr(module, "MAX_FILE_BYTES", 64)
    with pytest.raises(InputError, match="at most"):
        Vocabulary.from_file(big, ALPHABET)


def test_words_of_transcripts():
    assert words_of(["turn on the light", "four two", "turn off the light"]) == [
        "four", "light", "off", "on", "the", "turn", "two"]
