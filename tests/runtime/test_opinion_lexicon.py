"""Hu and Liu's opinion lexicon as the runtime reads it (`sensorium.runtime.opinion_lexicon`): the shipped
file, its words and negation, and the one line a missing or malformed file gives."""
from __future__ import annotations

import numpy as np
import pytest

from sensorium.runtime.errors import DataError
from sensorium.runtime.opinion_lexicon import (
    opinion_evidence,
    opinion_lexicon,
    read_opinion_lexicon,
    word_evidence,
    words,
)
from sensorium.runtime.predictor import assets_dir

HEADER = "# a comment\nword\tsentiment\n"


def test_the_shipped_lexicon_reads_whole():
    lexicon = opinion_lexicon()
    # 6,786 rows; "envious", "enviously" and "enviousness" are listed as both and read as neither
    assert len(lexicon) == 6_780 and "envious" not in lexicon
    assert lexicon["flawless"] == 1.0 and lexicon["dizzy"] == -1.0 and lexicon["2-faces"] == -1.0
    assert sum(v > 0 for v in lexicon.values()) == 2_002  # 2,005 positive rows, 3 of them words listed as both


def test_words_and_negation():
    assert words("It didn’t WORK, 2-faces a+") == ["it", "did", "n't", "work", "2-faces", "a+"]
    lexicon = {"good": 1.0, "bad": -1.0, "awful": -1.0}
    evidence = opinion_evidence(["good good bad", "not bad at all", "it isn't good", "the table", "awful"], lexicon)
    assert evidence == pytest.approx([1 / np.sqrt(3), 1.0, -1.0, 0.0, -1.0])
    assert opinion_evidence(["good " * 50_000], lexicon)[0] == pytest.approx(np.sqrt(4_000))  # read to 20,000 chars
    assert word_evidence(["refill refill", "x"], {"refill": 0.5}) == pytest.approx([0.5, 0.0])


@pytest.mark.parametrize(("content", "message"), [
    (None, "cannot read the opinion lexicon"),
    (b"\xff\xfe\x00", "not UTF-8"),
    (b"word,sentiment\ngood,positive\n", "no 'word<TAB>sentiment' header"),
    ((HEADER + "good\tgreat\n").encode(), "row 2 of the opinion lexicon is malformed"),
    ((HEADER + "two words\tpositive\n").encode(), "row 2 of the opinion lexicon is malformed"),
    ((HEADER + "good\tpositive\n").encode(), "has only 1 words"),
    (b"x" * (5 << 20), "the opinion lexicon is over 4,194,304 bytes"),
])
def test_a_missing_or_malformed_lexicon_is_one_line(tmp_path, content, message):
    path = tmp_path / "lexicon.tsv"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError, match=message) as info:
        read_opinion_lexicon(path)
    assert "\n" not in str(info.value)


def test_the_shipped_file_is_where_the_wheel_puts_it():
    import tomllib

    root = assets_dir().parent
    data = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "lexicons/*" in data["sensorium.assets"] and (assets_dir() / "lexicons/opinion-lexicon-en.tsv").is_file()
