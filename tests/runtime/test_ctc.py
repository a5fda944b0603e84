"""CTC decoding: greedy and prefix beam search agree on clear paths; beam search finds the more
probable labelling when the best path is not it."""
from __future__ import annotations

import numpy as np
import pytest

from sensorium.runtime.ctc import BLANK, VOCAB_SIZE, beam_search_decode, decode_ids, encode_text, greedy_decode


def _path(ids, confidence=0.9):
    """Per-frame log-probabilities that put `confidence` on each id of the path."""
    probs = np.full((len(ids), VOCAB_SIZE), (1 - confidence) / (VOCAB_SIZE - 1))
    probs[np.arange(len(ids)), ids] = confidence
    return np.log(probs)


def test_round_trip_and_errors():
    assert decode_ids(encode_text("don't go")) == "don't go"
    with pytest.raises(ValueError, match="not in the speech alphabet"):
        encode_text("Go!")


def test_greedy_merges_repeats_and_drops_blanks():
    h, e, l, o = encode_text("helo")
    path = [h, h, BLANK, e, l, l, BLANK, l, o, BLANK]
    assert greedy_decode(_path(path)) == "hello"
    assert greedy_decode(_path(path), length=4) == "he"
    assert beam_search_decode(_path(path), beam=8) == "hello"
    assert beam_search_decode(_path(path), beam=1) == "hello"


def test_beam_search_sums_paths_that_greedy_cannot():
    """Frames (a|blank) where the best single path is blank-blank, yet "a" is more probable overall."""
    a = encode_text("a")[0]
    probs = np.full((2, VOCAB_SIZE), 1e-6)
    probs[:, BLANK], probs[:, a] = 0.6, 0.4
    log_probs = np.log(probs / probs.sum(-1, keepdims=True))
    assert greedy_decode(log_probs) == ""  # best path: blank, blank (0.36)
    assert beam_search_decode(log_probs, beam=4) == "a"  # P("a") = 0.4*0.6 + 0.6*0.4 + 0.4*0.4 = 0.64


def test_beam_search_rejects_wrong_shapes():
    with pytest.raises(ValueError, match="expected log-probabilities"):
        beam_search_decode(np.zeros((5, 3)))
