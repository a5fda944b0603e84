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


# --- vocabulary-constrained decoding ---------------------------------------------------------------
def _spell(text, second=None, confidence=0.7):
    """Log-probabilities that spell `text` one character a frame (blank between letters), with
    `second` (same length) as each frame's runner-up."""
    ids, runner = [], []
    for i, c in enumerate(text):
        ids += [encode_text(c)[0], BLANK]
        alt = second[i] if second else c
        runner += [encode_text(alt)[0], BLANK]
    probs = np.full((len(ids), VOCAB_SIZE), 1e-4)
    for t, (best, alt) in enumerate(zip(ids, runner)):
        probs[t, best] += confidence
        if alt != best:
            probs[t, alt] += 1 - confidence - 0.05
    return np.log(probs / probs.sum(-1, keepdims=True))


def _vocabulary(words):
    from sensorium.runtime.transcripts import ALPHABET
    from sensorium.runtime.vocabulary import Vocabulary

    return Vocabulary.from_words(words, ALPHABET)


def test_lexicon_decoding_spells_only_vocabulary_words():
    from sensorium.runtime.ctc import lexicon_beam_decode

    vocabulary = _vocabulary(["five", "nine", "three", "go"])
    heard = _spell("fiev nime", second="five nine")  # what an unfamiliar voice gives greedy decoding
    assert greedy_decode(heard) == "fiev nime"
    assert lexicon_beam_decode(heard, vocabulary) == "five nine"
    assert lexicon_beam_decode(_spell("three"), vocabulary) == "three"  # "ee": a blank between the repeat
    assert lexicon_beam_decode(_spell("go "), vocabulary) == "go"  # a trailing space is dropped
    clear = _spell("nine go five")
    assert lexicon_beam_decode(clear, vocabulary) == greedy_decode(clear) == "nine go five"


def test_lexicon_decoding_of_silence_and_noise():
    from sensorium.runtime.ctc import lexicon_beam_decode

    vocabulary = _vocabulary(["five", "nine"])
    silence = np.log(np.full((40, VOCAB_SIZE), 1e-6))
    silence[:, BLANK] = 0.0
    assert lexicon_beam_decode(silence, vocabulary) == ""
    rng = np.random.default_rng(0)
    for _ in range(5):  # noise: whatever comes out is made of vocabulary words
        logits = rng.normal(size=(60, VOCAB_SIZE)) * 3
        noise = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        assert set(lexicon_beam_decode(noise, vocabulary).split()) <= {"five", "nine"}
    assert lexicon_beam_decode(np.zeros((0, VOCAB_SIZE)), vocabulary) == ""
    with pytest.raises(ValueError, match="expected log-probabilities"):
        lexicon_beam_decode(np.zeros((3, 5)), vocabulary)


def test_word_bonus_trades_words_for_length():
    from sensorium.runtime.ctc import lexicon_beam_decode

    vocabulary = _vocabulary(["a", "ab", "b"])
    probs = np.full((3, VOCAB_SIZE), 1e-4)
    a, b, space = encode_text("ab ")
    probs[0, a], probs[1, BLANK], probs[1, space], probs[2, b] = 1.0, 0.5, 0.5, 1.0
    lp = np.log(probs / probs.sum(-1, keepdims=True))
    assert lexicon_beam_decode(lp, vocabulary, word_bonus=-2.0) == "ab"
    assert lexicon_beam_decode(lp, vocabulary, word_bonus=2.0) == "a b"


def test_speech_confidence_and_the_noise_gate():
    from sensorium.runtime.ctc import speech_confidence
    from sensorium.runtime.errors import UsageError
    from sensorium.runtime.speech import SpeechRecognizer

    clear = _spell("five nine", confidence=0.9)
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(50, VOCAB_SIZE))
    logits[:, BLANK] += 0.5
    noisy = logits - np.log(np.exp(logits).sum(-1, keepdims=True))  # characters win some frames, barely
    assert speech_confidence(clear) > 0.85 and speech_confidence(noisy) < 0.3
    assert speech_confidence(np.log(np.full((5, VOCAB_SIZE), 1e-6) + np.eye(VOCAB_SIZE)[[BLANK] * 5])) == 1.0
    assert greedy_decode(noisy) != ""
    outputs = {50: noisy, 18: clear}
    asr = SpeechRecognizer(lambda x: outputs[len(x[0]) // 1000][None], {"frame_length": 400, "frame_step": 160,
                                                                           "subsampling": 4}, "fake", max_batch=1)
    waves = [np.zeros(50_000, np.float32), np.zeros(18_000, np.float32)]
    asr.frames = lambda n: len(outputs[n // 1000])  # the fake model's own framing
    assert asr.transcribe(waves) == ["", "five nine"]  # the default gate (0.5) drops the noise
    assert asr.configure(min_confidence=0.0).transcribe(waves)[0] == greedy_decode(noisy)
    with pytest.raises(UsageError, match="min_confidence"):
        asr.configure(min_confidence=1.5)
