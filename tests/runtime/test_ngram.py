"""Word n-gram language models (`sensorium.runtime.ngram`) and their use in CTC decoding."""
from __future__ import annotations

import math

import numpy as np
import pytest

from sensorium.runtime.ctc import BLANK, VOCAB_SIZE, encode_text, lexicon_beam_decode
from sensorium.runtime.errors import InputError
from sensorium.runtime.ngram import EOS, UNK, WordNgramLM

SENTENCES = ["turn on the light", "turn off the light", "turn on the heat", "go left", "go right", "go back",
             "lock the door", "four two seven", "seven seven one", "two"]


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_kneser_ney_distributions_sum_to_one(order):
    lm = WordNgramLM.train(SENTENCES, order=order)
    outcomes = lm.words + [EOS, UNK]
    for history in [(), ("<s>",), ("<s>", "turn"), ("turn", "on"), ("the", "light"), ("seven", "seven"),
                    ("never", "seen"), ("<s>", "never")]:
        assert math.fsum(math.exp(lm.log_prob(history, w)) for w in outcomes) == pytest.approx(1.0, abs=1e-9)


def test_the_model_prefers_what_it_was_told():
    lm = WordNgramLM.train(SENTENCES, order=3)
    said, unsaid = "turn on the light".split(), "turn on the door".split()
    assert lm.sentence_log_prob(said) > lm.sentence_log_prob(unsaid) + 2.0
    assert lm.log_prob(("<s>", "turn"), "on") > lm.log_prob(("<s>", "turn"), "left")
    # a word it never saw falls back to <unk>, the unigram floor; "two" ends a sentence more often than not
    assert lm.log_prob(("go",), "banana") == lm.log_prob((), UNK) + lm.backoffs[("go",)]
    assert lm.log_prob(("two",), EOS) > lm.log_prob(("two",), "seven")
    assert lm.words == sorted({w for s in SENTENCES for w in s.split()})


def test_arpa_round_trip_keeps_every_probability():
    lm = WordNgramLM.train(SENTENCES, order=3)
    again = WordNgramLM.from_arpa(lm.to_arpa())
    assert again.order == 3 and len(again) == len(lm)
    for history in [(), ("<s>",), ("<s>", "go"), ("turn", "off"), ("x", "y")]:
        for w in lm.words + [EOS, "unknown"]:
            assert again.log_prob(history, w) == pytest.approx(lm.log_prob(history, w), abs=1e-5)
    assert WordNgramLM.from_dict(lm.to_dict()).log_prob(("<s>",), "go") == pytest.approx(
        lm.log_prob(("<s>",), "go"), abs=1e-5)


def test_a_toolkit_arpa_file_scores_by_backoff(tmp_path):
    """A KenLM-style file: <s> at -99 with a backoff, no <unk> line; values are log10."""
    arpa = tmp_path / "lm.arpa"
    arpa.write_text("# made by hand\n\n\\data\\\nngram 1=4\nngram 2=2\n\n\\1-grams:\n-99\t<s>\t-0.5\n"
                    "-0.3\tgo\t-0.2\n-0.6\tleft\n-0.7\t</s>\n\n\\2-grams:\n-0.1\t<s> go\n-0.05\tgo left\n\n\\end\\\n")
    lm = WordNgramLM.from_file(arpa)
    ln10 = math.log(10)
    assert lm.log_prob(("<s>",), "go") == pytest.approx(-0.1 * ln10)
    assert lm.log_prob(("go",), "left") == pytest.approx(-0.05 * ln10)
    assert lm.log_prob(("<s>",), "left") == pytest.approx((-0.5 - 0.6) * ln10)  # backoff(<s>) + P(left)
    assert lm.log_prob(("left",), "go") == pytest.approx(-0.3 * ln10)  # no backoff stored for "left": 0
    assert lm.log_prob(("go",), "zebra") == pytest.approx((-0.2 - 0.7) * ln10)  # <unk> takes the floor


def test_a_sentence_file_is_trained_on(tmp_path):
    text = tmp_path / "commands.txt"
    text.write_text("# commands\nOpen the pod bay doors\n\nclose the pod bay doors\n", encoding="utf-8")
    lm = WordNgramLM.from_file(text, order=2)
    assert lm.order == 2 and lm.words == ["bay", "close", "doors", "open", "pod", "the"]
    assert lm.log_prob(("pod",), "bay") > lm.log_prob(("pod",), "doors")


@pytest.mark.parametrize("content, message", [
    (b"\\data\\\nngram 1=2\n\n\\1-grams:\n-1\tgo\n-1\t</s>\n", "no \\\\end\\\\ line"),
    (b"\\data\\\nngram 1=3\n\n\\1-grams:\n-1\tgo\n-1\t</s>\n\\end\\\n", "header says 3 1-grams, the file has 2"),
    (b"\\data\\\nngram 1=2\n\n\\1-grams:\nabc\tgo\n-1\t</s>\n\\end\\\n", "not a number"),
    (b"\\data\\\nngram 1=2\n\n\\1-grams:\nnan\tgo\n-1\t</s>\n\\end\\\n", "not finite"),
    (b"\\data\\\nngram 2=1\n\n\\2-grams:\n-1\tgo left\n\\end\\\n", "out of order"),
    (b"\\data\\\nngram 1=1\n\n\\1-grams:\n-1\tgo\n\\end\\\n", "lack </s>"),
    (b"\\data\\\nngram 1=1\n\n\\1-grams:\n-1\tgo left right\n\\end\\\n", "has 4 fields"),
    (b"\\data\\\n-1\tgo\n\\end\\\n", "before any"),
    (b"\xff\xfe bad bytes", "not UTF-8"),
    (b"go left\x00", "NUL bytes"),
    (b"# only a comment\n\n", "no sentences"),
])
def test_bad_language_model_files_are_one_line(tmp_path, content, message):
    path = tmp_path / "bad.arpa"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message) as info:
        WordNgramLM.from_file(path)
    assert "\n" not in str(info.value)


def test_missing_and_oversized_files(tmp_path, monkeypatch):
    with pytest.raises(InputError, match="does not exist"):
        WordNgramLM.from_file(tmp_path / "nope.arpa")
    with pytest.raises(InputError, match="is not a file"):
        WordNgramLM.from_file(tmp_path)
    import sensorium.runtime.ngram as ngram

    big = tmp_path / "big.txt"
    big.write_text("go left\n" * 100)
    monkeypatch.setattr(ngram, "MAX_FILE_BYTES", 100)
    with pytest.raises(InputError, match="at most"):
        WordNgramLM.from_file(big)
    monkeypatch.setattr(ngram, "MAX_NGRAMS", 5)
    with pytest.raises(InputError, match="more than 5 distinct n-grams"):
        WordNgramLM.train(SENTENCES)
    with pytest.raises(InputError, match="order must be"):
        WordNgramLM.train(SENTENCES, order=9)
    with pytest.raises(InputError, match="expected"):
        WordNgramLM.from_dict({"format": "pickle", "arpa": "x"})


# --- shallow fusion in vocabulary decoding ----------------------------------------------------------
def _frames(*segments):
    """Log-probabilities from (characters, probabilities) segments: each segment is one frame holding
    its characters with those probabilities (the rest of the mass on the blank), then a blank frame."""
    rows = []
    for chars, probs in segments:
        row = np.full(VOCAB_SIZE, 1e-4)
        for c, p in zip(chars, probs):
            row[encode_text(c)[0]] += p
        row[BLANK] += max(0.0, 1.0 - sum(probs))
        rows += [row, np.eye(VOCAB_SIZE)[BLANK] + 1e-4]
    lp = np.array(rows)
    return np.log(lp / lp.sum(-1, keepdims=True))


def _vocabulary(words):
    from sensorium.runtime.transcripts import ALPHABET
    from sensorium.runtime.vocabulary import Vocabulary

    return Vocabulary.from_words(words, ALPHABET)


def test_the_language_model_turns_an_unlikely_word_sequence_into_a_likely_one():
    vocabulary = _vocabulary(["go", "no", "left", "right"])
    lm = WordNgramLM.train(["go left", "go right", "no"] * 3, order=2)
    # the voice says "go left", but "n" edges out "g": acoustically, "no left" wins
    heard = _frames(("ng", (0.55, 0.45)), ("o", (0.9,)), (" ", (0.9,)), *[(c, (0.9,)) for c in "left"])
    assert lexicon_beam_decode(heard, vocabulary) == "no left"
    assert lexicon_beam_decode(heard, vocabulary, language_model=lm, lm_weight=0.5) == "go left"
    assert lexicon_beam_decode(heard, vocabulary, language_model=lm, lm_weight=0.0) == "no left"
    # clear speech keeps its words even where the language model disagrees
    clear = _frames(*[(c, (0.97,)) for c in "no left"])
    assert lexicon_beam_decode(clear, vocabulary, language_model=lm, lm_weight=0.5) == "no left"
    silence = np.log(np.full((20, VOCAB_SIZE), 1e-6))
    silence[:, BLANK] = 0.0
    assert lexicon_beam_decode(silence, vocabulary, language_model=lm) == ""


def test_the_end_of_sentence_probability_decides_a_last_word():
    vocabulary = _vocabulary(["two", "to", "seven"])
    lm = WordNgramLM.train(["seven two", "two seven two"] * 5 + ["to seven"], order=2)
    # "two" vs "to" at the end: one letter's evidence either way, the language model knows "two" ends
    heard = _frames(*[(c, (0.9,)) for c in "seven t"], ("w", (0.4,)), ("o", (0.9,)))
    assert lexicon_beam_decode(heard, vocabulary) == "seven to"
    assert lexicon_beam_decode(heard, vocabulary, language_model=lm, lm_weight=0.5) == "seven two"
