"""The binary head's lexicon expert (`sensorium.runtime.lexicon_fusion`): the record it reads, VADER's
calibrated opinion, how the classifier adds it, and the one line a missing vaderSentiment gives."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from sensorium.runtime import lexicon_fusion
from sensorium.runtime.errors import MissingExtraError, UsageError
from sensorium.runtime.lexicon_fusion import LEXICON, Expert, compound_scores, lexicon_evidence, lexicon_logits
from sensorium.runtime.sentiment import TextClassifier

LABELS = ["negative", "neutral", "positive"]
RECORD = {"lexicon": LEXICON, "scale": 1.2, "bias": -0.2}
BOTH = {"lexicon": LEXICON + "+opinion+words", "scale": 0.8, "bias": -0.1, "opinion_scale": 0.5,
        "words": {"refill": 0.7, "generic": -0.4}}


@pytest.mark.parametrize(("info", "expected"), [
    ({"lexicon_fusion": RECORD}, Expert(1.2, -0.2)),
    ({"model": {"lexicon_fusion": RECORD}}, Expert(1.2, -0.2)),  # a .tflite manifest
    ({"lexicon_fusion": BOTH}, Expert(0.8, -0.1, 0.5, {"refill": 0.7, "generic": -0.4})),
    ({"lexicon_fusion": {**BOTH, "lexicon": LEXICON + "+opinion"}}, Expert(0.8, -0.1, 0.5)),
    ({"lexicon_fusion": {**BOTH, "lexicon": LEXICON + "+words+words"}}, None),
    ({"lexicon_fusion": {**BOTH, "lexicon": LEXICON + "+emoji"}}, None),  # an opinion this runtime lacks
    ({"lexicon_fusion": {**BOTH, "opinion_scale": 0.0}}, None),
    ({"lexicon_fusion": {**BOTH, "words": {"refill": "x"}}}, None),
    ({"lexicon_fusion": {**BOTH, "words": {"refill": float("inf")}}}, None),
    ({"lexicon_fusion": {**BOTH, "words": {}}}, None),
    ({"lexicon_fusion": {**BOTH, "words": ["refill"]}}, None),
    ({}, None),
    ({"lexicon_fusion": {**RECORD, "lexicon": "vader-9"}}, None),  # another lexicon: not ours to apply
    ({"lexicon_fusion": {**RECORD, "scale": "x"}}, None),
    ({"lexicon_fusion": {**RECORD, "scale": -1.0}}, None),
    ({"lexicon_fusion": {**RECORD, "bias": float("nan")}}, None),
    ({"lexicon_fusion": {"scale": 1.0, "bias": 0.0}}, None),
    ({"lexicon_fusion": "on"}, None),
])
def test_the_record(info, expected):
    assert lexicon_fusion.lexicon_fusion(info) == expected


def test_vaders_opinion_is_bounded_and_signed():
    compound = compound_scores(["What a wonderful, lovely day!", "Awful. Terrible. The worst.", "the table"])
    assert compound[0] > 0.5 and compound[1] < -0.5 and compound[2] == 0.0
    evidence = lexicon_evidence(np.array([-1.0, -0.5, 0.0, 0.5, 1.0]))
    assert np.all(np.isfinite(evidence)) and np.all(np.diff(evidence) > 0) and evidence[2] == 0.0
    assert evidence[-1] == pytest.approx(np.arctanh(0.999))  # a saturated score counts, but finitely
    logits = lexicon_logits(["the table", "great"], 2.0, -0.25)
    assert logits[0] == pytest.approx(-0.25) and logits[1] > 0  # no sentiment words: the bias alone


def test_an_experts_record_reads_back_as_the_expert():
    for expert in (Expert(1.2, -0.2), Expert(0.8, -0.1, 0.5), Expert(0.8, -0.1, 0.5, {"refill": 0.7})):
        assert lexicon_fusion.lexicon_fusion({"lexicon_fusion": expert.record()}) == expert


def test_the_opinion_lexicon_and_the_domain_words_add_their_weighted_evidence():
    texts = ["the refill arrived", "a flawless refill, not bad", "generic refill"]
    vader = lexicon_logits(texts, 1.0, 0.0)
    expert = Expert(1.0, 0.0, 0.5, {"refill": 0.7, "generic": -0.4})
    both = lexicon_logits(texts, *expert)
    # opinion lexicon: "flawless" +1, "bad" after "not" flips to +1: 2 / sqrt(2); words counted once a text
    assert both - vader == pytest.approx([0.7, 0.5 * np.sqrt(2) + 0.7, 0.3])


def _leaning_negative(info: dict) -> TextClassifier:
    """A stub model that calls every text mildly negative (log-odds log(0.3 / 0.5)), whatever it says."""
    probs = np.array([[0.5, 0.2, 0.3]], np.float32)
    return TextClassifier(lambda texts: np.tile(probs, (len(texts), 1)), list(LABELS), "stub", info)


def test_the_lexicon_expert_can_overrule_a_model_that_does_not_know_the_words():
    info = {"binary_calibration": {"scale": 1.0, "bias": 0.0}, "lexicon_fusion": RECORD}
    texts = ["This cream is wonderful, it relieved everything", "Dizzy and itchy, awful stuff", "the syrup"]
    fused = _leaning_negative(info).configure(label_set="binary")(texts)
    assert [r["label"] for r in fused] == ["positive", "negative", "negative"]
    assert all(r["fusion"] == "lexicon" and r["label_set"] == "binary" for r in fused)
    # p(positive) = sigmoid(log(0.3 / 0.5) + 1.2 * atanh(compound) - 0.2): the neutral text (compound 0)
    # keeps the model's lean, shifted by the expert's bias
    assert fused[2]["scores"]["positive"] == pytest.approx(1 / (1 + np.exp(-(np.log(0.6) - 0.2))), abs=1e-5)
    alone = _leaning_negative(info).configure(label_set="binary", fusion="none")(texts)
    assert [r["label"] for r in alone] == ["negative"] * 3 and all(r["fusion"] == "none" for r in alone)
    unrecorded = _leaning_negative({}).configure(label_set="binary")(texts)  # a model without the record
    assert [r["label"] for r in unrecorded] == ["negative"] * 3 and unrecorded[0]["fusion"] == "none"
    three = _leaning_negative(info)(texts)  # the model's own labels: never fused, no fusion field
    assert [r["label"] for r in three] == ["negative"] * 3 and "fusion" not in three[0]


def test_a_bad_fusion_option_is_a_usage_error():
    with pytest.raises(UsageError, match="fusion must be lexicon or none"):
        _leaning_negative({}).configure(fusion="maybe")


def test_without_vadersentiment_the_binary_head_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "vaderSentiment", None)
    monkeypatch.setitem(sys.modules, "vaderSentiment.vaderSentiment", None)
    lexicon_fusion._analyzer.cache_clear()
    try:
        clf = _leaning_negative({"lexicon_fusion": RECORD})
        assert clf(["fine"])[0]["ok"]  # the three labels need no lexicon
        with pytest.raises(MissingExtraError, match=r"pip install vaderSentiment==3\.3\.2"):
            clf.configure(label_set="binary")  # said when the head is asked for, before any text
        assert clf.configure(label_set="binary", fusion="none")(["fine"])[0]["ok"]  # the model's own head
    finally:
        lexicon_fusion._analyzer.cache_clear()


def test_a_long_or_hostile_text_is_scored_in_bounded_runs():
    from sensorium.runtime.lexicon_fusion import CHUNK_CHARS, MAX_CHARS, _parts

    review = "The film was great. " * 40 + "But the ending was awful and boring. " * 20  # 1,540 characters
    parts = _parts(review)
    assert len(parts) == 2 and "".join(parts) == review and all(p.endswith(" ") for p in parts[:-1])
    whole = lexicon_fusion._analyzer().polarity_scores(review)["compound"]
    assert compound_scores([review])[0] == pytest.approx(whole, abs=0.01)  # runs add up to the whole
    for hostile in ("\U0001F600" * 1_000_000, "good but bad " * 80_000, "a" * 1_000_000):
        parts = _parts(hostile)
        assert sum(map(len, parts)) == MAX_CHARS and max(map(len, parts)) <= CHUNK_CHARS
    scores = compound_scores(["good but bad " * 80_000, "\U0001F600 " * 20_000])
    assert np.all(np.isfinite(scores)) and np.all(np.abs(scores) <= 1)


def test_a_model_whose_expert_hears_the_opinion_lexicon_says_so_in_one_line_when_the_file_is_gone(monkeypatch):
    from sensorium.runtime import opinion_lexicon
    from sensorium.runtime.errors import DataError

    monkeypatch.setattr(opinion_lexicon, "OPINION_FILE", "lexicons/no-such-file.tsv")
    opinion_lexicon.opinion_lexicon.cache_clear()
    try:
        clf = _leaning_negative({"lexicon_fusion": BOTH})
        assert clf(["fine"])[0]["ok"]  # the three labels need no lexicon
        with pytest.raises(DataError, match="no-such-file.tsv: cannot read the opinion lexicon") as info:
            clf.configure(label_set="binary")  # said when the head is asked for, before any text
        assert "\n" not in str(info.value)
        assert _leaning_negative({"lexicon_fusion": RECORD}).configure(label_set="binary")(["fine"])[0]["ok"]
    finally:
        opinion_lexicon.opinion_lexicon.cache_clear()
