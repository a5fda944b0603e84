"""CTC decoding in numpy (no TensorFlow), shared by the Keras path and the edge runner.

Vocabulary: id 0 is the CTC blank (and label padding); ids 1..len(alphabet) are the characters of
the alphabet (default `ALPHABET`: space, apostrophe, a-z; a model's own alphabet travels in its
metadata). Decoders take per-frame log-probabilities or probabilities `(T, V)` of one utterance and
return text.
"""
from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from sensorium.runtime.transcripts import ALPHABET

BLANK = 0
VOCAB_SIZE = len(ALPHABET) + 1  # characters + blank
_CHAR_TO_ID = {c: i + 1 for i, c in enumerate(ALPHABET)}


def encode_text(text: str) -> list[int]:
    """Normalised text -> label ids (1..VOCAB_SIZE-1); characters outside the alphabet are an error."""
    try:
        return [_CHAR_TO_ID[c] for c in text]
    except KeyError as exc:
        raise ValueError(f"character {exc.args[0]!r} is not in the speech alphabet; normalise the transcript "
                         "first") from None


def decode_ids(ids, alphabet: str = ALPHABET) -> str:
    """Label ids (no blanks) -> text."""
    return "".join(alphabet[i - 1] for i in ids if 0 < i <= len(alphabet))


def greedy_decode(scores: np.ndarray, length: int | None = None, alphabet: str = ALPHABET) -> str:
    """Best path: argmax per frame, merge repeats, drop blanks. `scores` (T, V), any monotone scale."""
    scores = np.asarray(scores)[: length or len(scores)]
    if len(scores) == 0:
        return ""
    best = scores.argmax(-1)  # (T,)
    keep = np.ones_like(best, dtype=bool)
    keep[1:] = best[1:] != best[:-1]
    return decode_ids([int(i) for i in best[keep] if i != BLANK], alphabet)


def speech_confidence(log_probs: np.ndarray) -> float:
    """How sure the model is that it hears speech: the mean probability of the winning character on
    the frames where a character (not the blank) wins; 1.0 when the blank wins every frame (nothing
    said, nothing to doubt). Speech the model knows scores 0.6-1.0; noise it mistakes for speech
    scores about 0.25 (below 0.48 in 99 of 100 noise clips, measured with the bundled model)."""
    lp = np.asarray(log_probs, dtype=np.float64)
    if lp.ndim != 2 or len(lp) == 0:
        return 1.0
    best = lp.argmax(-1)
    spoken = best != BLANK
    if not spoken.any():
        return 1.0
    return float(np.exp(lp[spoken, best[spoken]]).mean())


def _logsumexp(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    m = max(a, b)
    return m + math.log1p(math.exp(-abs(a - b)))


def beam_search_decode(log_probs: np.ndarray, beam: int = 8, length: int | None = None,
                       prune: float = -12.0, alphabet: str = ALPHABET) -> str:
    """CTC prefix beam search over log-probabilities `(T, V)` (log-softmax outputs).

    Keeps `beam` prefixes, each with the log-probability of ending in blank and in non-blank;
    characters whose frame log-probability is below `prune` are skipped (they cannot win).
    With beam=1 it equals greedy decoding up to ties.
    """
    vocab = len(alphabet) + 1
    lp = np.asarray(log_probs, dtype=np.float64)[: length or len(log_probs)]
    if lp.ndim != 2 or lp.shape[1] != vocab:
        raise ValueError(f"expected log-probabilities (T, {vocab}), got {lp.shape}")
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, -math.inf)}  # prefix -> (blank, non-blank)
    for t in range(len(lp)):
        frame = lp[t]
        candidates = [c for c in range(1, vocab) if frame[c] >= prune]
        nxt: dict[tuple[int, ...], list[float]] = defaultdict(lambda: [-math.inf, -math.inf])
        for prefix, (p_b, p_nb) in beams.items():
            total = _logsumexp(p_b, p_nb)
            entry = nxt[prefix]  # the prefix stays: a blank, or a repeat of its last character
            entry[0] = _logsumexp(entry[0], total + frame[BLANK])
            if prefix:
                entry[1] = _logsumexp(entry[1], p_nb + frame[prefix[-1]])
            for c in candidates:
                extended = nxt[prefix + (c,)]
                if prefix and prefix[-1] == c:  # a repeated character needs a blank in between
                    extended[1] = _logsumexp(extended[1], p_b + frame[c])
                else:
                    extended[1] = _logsumexp(extended[1], total + frame[c])
        ranked = sorted(nxt.items(), key=lambda kv: _logsumexp(*kv[1]), reverse=True)[:beam]
        beams = {prefix: (b, nb) for prefix, (b, nb) in ranked}
    best = max(beams.items(), key=lambda kv: _logsumexp(*kv[1]))[0]
    return decode_ids(best, alphabet)


def _merge(beams: dict, prefix: tuple[int, ...], node: int, p_blank: float, p_char: float,
           extra: float = 0.0, history: tuple[str, ...] = ()) -> None:
    """Add path probabilities to `beams[prefix]` = [log p(ends in blank), log p(ends in a character),
    trie node, word score (bonuses and language model, fixed by the prefix), language-model history]."""
    entry = beams.get(prefix)
    if entry is None:
        beams[prefix] = [p_blank, p_char, node, extra, history]
    else:
        entry[0], entry[1] = _logsumexp(entry[0], p_blank), _logsumexp(entry[1], p_char)


def lexicon_beam_decode(log_probs: np.ndarray, vocabulary, beam: int = 16, length: int | None = None,
                        prune: float = -10.0, word_bonus: float = 0.0, language_model=None,
                        lm_weight: float = 0.5) -> str:
    """CTC prefix beam search that spells only words of `vocabulary` (a `runtime.vocabulary.Vocabulary`
    built for the model's alphabet), words separated by single spaces.

    Each prefix carries its trie node: a letter may extend it only along the trie, a space only after
    a whole word. At the end, only prefixes that end on a whole word (or say nothing) count, so noise
    or silence gives "". `word_bonus` (log domain) is added per word: above 0 it favours more, shorter
    words, below 0 fewer. With a `language_model` (a `runtime.ngram.WordNgramLM`), each word also adds
    `lm_weight` x ln P(word | the words before it), and a finished transcript ln P(</s> | its last
    words) (shallow fusion); the empty transcript is not scored by it. Characters whose frame
    log-probability is below `prune` are skipped.
    """
    alphabet = vocabulary.alphabet
    vocab = len(alphabet) + 1
    lp = np.asarray(log_probs, dtype=np.float64)[: length or len(log_probs)]
    if lp.ndim != 2 or lp.shape[1] != vocab:
        raise ValueError(f"expected log-probabilities (T, {vocab}), got {lp.shape}")
    children, is_word, space = vocabulary.children, vocabulary.is_word, vocabulary.space_id
    lm, weight = language_model, float(lm_weight)
    start: tuple[str, ...] = ("<s>",) if lm is not None else ()

    def word_score(prefix: tuple[int, ...], history: tuple[str, ...]) -> tuple[float, tuple[str, ...]]:
        """The bonus and weighted LM score of the word that `prefix` ends with, and the new history."""
        if lm is None:
            return word_bonus, history
        cut = len(prefix)
        while cut and prefix[cut - 1] != space:
            cut -= 1
        word = decode_ids(prefix[cut:], alphabet)
        return word_bonus + weight * lm.log_prob(history, word), lm.state(history, word)

    def ranked_score(kv) -> float:
        p_b, p_nb, _, extra, _ = kv[1]
        return _logsumexp(p_b, p_nb) + extra

    ninf = -math.inf
    beams: dict[tuple[int, ...], list] = {(): [0.0, ninf, 0, 0.0, start]}
    for t in range(len(lp)):
        frame = lp[t]
        live = [int(c) for c in np.flatnonzero(frame[1:] >= prune) + 1]
        nxt: dict[tuple[int, ...], list] = {}
        for prefix, (p_b, p_nb, node, extra, history) in beams.items():
            total = _logsumexp(p_b, p_nb)
            last = prefix[-1] if prefix else -1
            _merge(nxt, prefix, node, total + frame[BLANK], p_nb + frame[last] if prefix else ninf,
                   extra, history)  # a blank, or the last character again
            for c in live:
                if c == space:
                    if not prefix or last == space or not is_word[node]:
                        continue  # a space only ends a whole word
                    child = 0
                    gain, new_history = word_score(prefix, history)
                else:
                    child = children[node].get(c)
                    if child is None:
                        continue  # no word of the vocabulary goes on this way
                    gain, new_history = 0.0, history
                extended = prefix + (c,)
                score = (p_b if c == last else total) + frame[c]  # a repeat needs a blank between
                if extended in nxt:
                    _merge(nxt, extended, child, ninf, score)
                else:
                    _merge(nxt, extended, child, ninf, score, extra + gain, new_history)
        beams = dict(sorted(nxt.items(), key=ranked_score, reverse=True)[:beam])
    finals = []
    for prefix, (p_b, p_nb, node, extra, history) in beams.items():
        acoustic = _logsumexp(p_b, p_nb)
        if not prefix:  # nothing said
            finals.append((acoustic, prefix))
            continue
        if prefix[-1] == space:  # whole words, then a space
            words = prefix[:-1]
        elif is_word[node]:
            gain, history = word_score(prefix, history)
            extra, words = extra + gain, prefix
        else:
            continue
        if lm is not None:
            extra += weight * lm.log_prob(history, "</s>")
        finals.append((acoustic + extra, words))
    if not finals:
        return ""
    return decode_ids(max(finals)[1], alphabet)
