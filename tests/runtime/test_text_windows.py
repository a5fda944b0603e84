"""Long texts read sentence by sentence: splitting, planning and pooling (numpy only), and the
classifier's `long_text` option on a stub model that records what it is asked to read."""
from __future__ import annotations

import time

import numpy as np
import pytest

from sensorium.runtime.errors import UsageError
from sensorium.runtime.sentiment import TextClassifier, long_text_pieces
from sensorium.runtime.text_windows import MAX_PARTS, join, plan, pool, segments, sentences, split_sentences


def test_sentences_split_at_ends_line_breaks_and_br_tags():
    text = "Great film. Loved it!  But the end<br /><br />was weak\u2026 Overall ok?\nYes"
    assert sentences(text) == ["Great film.", "Loved it!", "But the end", "was weak\u2026", "Overall ok?", "Yes"]
    assert sentences("It costs 3.5 dollars, e.g.for two.") == ["It costs 3.5 dollars, e.g.for two."]
    assert sentences("no boundary at all") == ["no boundary at all"]
    assert sentences("   \n\n <br> ") == ["   \n\n <br> "]  # nothing but boundaries: the text itself


@pytest.mark.parametrize("text", [" " * 1_000_000, ". " * 500_000, "<br" + " " * 999_990, "<br " * 250_000,
                                  "\n \n" * 300_000, "a. " * 333_333, "\u2026" * 1_000_000, "!?" * 500_000])
def test_hostile_texts_split_in_linear_time_into_bounded_parts(text):
    t0 = time.perf_counter()
    parts = sentences(text)
    assert time.perf_counter() - t0 < 2.0  # linear: about 0.1 s each here; quadratic would take hours
    assert 1 <= len(parts) <= MAX_PARTS


def test_many_sentences_become_max_parts_runs_in_order():
    text = " ".join(f"s{i}." for i in range(1000))
    parts = sentences(text, max_parts=10)
    assert len(parts) == 10
    assert " ".join(parts).split() == [f"s{i}." for i in range(1000)]  # every sentence once, in order


def test_segments_spell_the_text_again_with_their_separators():
    text = "<br>  Open the file. Then save it!\n\nDone<br/> ok  "
    parts, seps = segments(text)
    assert parts == ["Open the file.", "Then save it!", "Done", "ok"]
    assert seps == ["<br>  ", " ", "\n\n", "<br/> ", "  "]
    assert join(parts, [seps]) == [text]
    assert segments("") == ([""], ["", ""]) and segments(" <br> \n ") == ([" <br> \n "], ["", ""])


def test_split_sentences_and_join_round_trip_and_cap_the_parts():
    texts = ["One. Two!  Three?", "single sentence", "a\nb", "", "<br>Lead. Tail.<br>"]
    rows, separators = split_sentences(texts)
    assert rows == ["One.", "Two!", "Three?", "single sentence", "a", "b", "", "Lead.", "Tail."]
    assert join([r.upper() for r in rows], separators) == ["ONE. TWO!  THREE?", "SINGLE SENTENCE", "A\nB", "",
                                                           "<br>LEAD. TAIL.<br>"]  # tags kept where they were
    many = " ".join(f"s{i}." for i in range(10))
    rows, separators = split_sentences([many], max_parts=4)
    assert rows == ["s0.", "s1.", "s2.", " ".join(f"s{i}." for i in range(3, 10))]  # the rest as one part
    assert join(rows, separators) == [many]
    with pytest.raises(ValueError, match="outputs"):
        join(["x"], [["", " ", ""]])
    with pytest.raises(ValueError, match="outputs"):
        join(["x", "y"], [[]])


def test_plan_splits_only_long_texts_of_several_sentences():
    texts = ["short. text.", "long one. with two.", "long without a boundary"]
    rows, owner = plan(texts, [2, 9, 9], limit=5)
    assert rows == ["short. text.", "long one.", "with two.", "long without a boundary"]
    assert owner.tolist() == [0, 1, 1, 2]


def test_pool_is_the_normalised_geometric_mean():
    probs = np.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8], [0.7, 0.2, 0.1]], np.float32)
    out = pool(probs, np.array([0, 1, 1, 2]), 3)
    np.testing.assert_allclose(out[0], probs[0], atol=1e-6)  # one row: unchanged
    np.testing.assert_allclose(out[2], probs[3], atol=1e-6)
    g = np.sqrt(probs[1] * probs[2])
    np.testing.assert_allclose(out[1], g / g.sum(), atol=1e-6)
    # the pooled positive-vs-negative log-odds is the mean of the rows' (what the binary head reads)
    margin = np.log(probs[1:3, 2]) - np.log(probs[1:3, 0])
    assert np.log(out[1, 2]) - np.log(out[1, 0]) == pytest.approx(margin.mean(), abs=1e-5)


class _Pieces:
    """A tokenizer stub: one piece per word."""

    def encode_pieces(self, texts):
        return [[5] * len(t.split()) for t in texts]


def _classifier(info: dict, max_length: int | None = 8) -> tuple[TextClassifier, list[list[str]]]:
    """A classifier whose model calls a text positive when it contains "good", negative otherwise,
    and which records every batch it is asked to read."""
    calls: list[list[str]] = []

    def run(texts: list[str]) -> np.ndarray:
        calls.append(list(texts))
        return np.asarray([[0.1, 0.1, 0.8] if "good" in t else [0.7, 0.2, 0.1] for t in texts], np.float32)

    return TextClassifier(run, ["negative", "neutral", "positive"], "stub", info, tokenizer=_Pieces(),
                          max_length=max_length), calls


LONG = "good start here. then bad. bad again. and bad to the end."  # 12 words, 4 sentences


def test_long_texts_are_read_sentence_by_sentence_unless_truncate():
    clf, calls = _classifier({"long_text_pieces": 5})
    probs = clf.predict([LONG, "good short one"])
    assert calls[-1] == ["good start here.", "then bad.", "bad again.", "and bad to the end.", "good short one"]
    assert probs.argmax(1).tolist() == [0, 2]  # three of the four sentences are negative
    assert probs.shape == (2, 3) and np.allclose(probs.sum(1), 1.0, atol=1e-6)

    clf.configure(long_text="truncate")
    probs = clf.predict([LONG, "good short one"])
    assert calls[-1] == [LONG, "good short one"]  # whole texts (the model cuts them to its window)
    assert probs.argmax(1).tolist() == [2, 2]
    assert clf([LONG])[0]["label"] == "positive"
    assert clf.configure(long_text="sentences")([LONG])[0]["label"] == "negative"


def test_the_length_comes_from_the_record_else_the_window():
    assert long_text_pieces({"long_text_pieces": 57}, 128) == 57
    assert long_text_pieces({"model": {"long_text_pieces": 40}}, 128) == 40  # a .tflite manifest
    for bad in ({}, {"long_text_pieces": "57"}, {"long_text_pieces": 0}, {"long_text_pieces": True},
                {"long_text_pieces": -3}, {"long_text_pieces": 2.5}):
        assert long_text_pieces(bad, 128) == 127  # what the window holds after [BOS]
    assert long_text_pieces({}, None) is None

    clf, calls = _classifier({}, max_length=20)  # no record: only texts the window would cut are split
    clf.predict([LONG])
    assert calls[-1] == [LONG]
    clf.max_length = 8
    clf.predict([LONG])
    assert len(calls[-1]) == 4


def test_bad_long_text_option_is_a_usage_error():
    clf, _ = _classifier({})
    with pytest.raises(UsageError, match="sentences or truncate"):
        clf.configure(long_text="paragraphs")


def test_a_model_without_a_tokenizer_reads_texts_whole():
    calls: list[list[str]] = []

    def run(texts):
        calls.append(list(texts))
        return np.full((len(texts), 2), 0.5, np.float32)

    clf = TextClassifier(run, ["negative", "positive"], "stub", {"long_text_pieces": 1})
    clf.predict([LONG])
    assert calls == [[LONG]]


def test_no_split_inside_a_tag_a_placeholder_or_braces():
    from sensorium.runtime.translation import unsplittable

    text = 'See <a title="Saved. Close it">the file</a>. {count, plural, one {# file. Open it} other {# files}} Done.'
    spans = unsplittable(text)
    rows, separators = split_sentences([text], keep=unsplittable)
    assert rows == ['See <a title="Saved. Close it">the file</a>.',
                    "{count, plural, one {# file. Open it} other {# files}} Done."]
    assert join(rows, separators) == [text]
    assert all(b <= c for (_, b), (c, _) in zip(spans, spans[1:]))  # sorted and disjoint
    # <br> is itself a tag and a boundary: it still splits, and is kept as written
    assert split_sentences(["One<br/>Two"], keep=unsplittable)[0] == ["One", "Two"]
    assert unsplittable("an { unclosed. brace") == [(3, 20)]
    t0 = time.perf_counter()
    for hostile in ("{" * 1_000_000, "{}. " * 250_000, "<a " * 300_000, ". " * 500_000):
        split_sentences([hostile], keep=unsplittable)
    assert time.perf_counter() - t0 < 20.0  # linear in each input (about 1 s each here)
