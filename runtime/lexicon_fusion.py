"""A second expert for the binary head: VADER's rule-based score, fused with the model's own log-odds.

A model trained on one corpus knows the words of its topics; a human-rated lexicon knows words in
general. The binary head (`sensorium.runtime.sentiment`) can add the two experts' calibrated log-odds,
the naive-Bayes combination of two opinions (each calibrated alone, with balanced priors):

    logit = scale * (log p(positive) - log p(negative)) + bias           the model (binary_calibration)
          + lex_scale * atanh(clip(compound, +-0.999)) + lex_bias        VADER (lexicon_fusion)

`compound` is VADER's normalised score in [-1, 1] (vaderSentiment 3.3.2, MIT: its lexicon of 7,500
human-rated words and its rules for negation, intensifiers, "but", capitals and punctuation). Those
rules take time quadratic in a text's length, so a long text is scored in bounded runs
(`compound_scores`). Its calibration is fitted on the model's training and validation texts at the end
of training (VADER learns from neither) and rides in the model metadata as `lexicon_fusion`
{"lexicon": "vader-3.3.2", "scale", "bias"}; a model without that record is not fused. The two are not
fitted jointly: on the training corpus's own texts a joint fit learns to trust the model, and that does
not transfer to other domains.

An expert can hear two more opinions (`sensorium.runtime.opinion_lexicon`): Hu and Liu's opinion lexicon
and the words of a user's own domain, learned from their labelled texts when a model is adapted to it
(`train sentiment --init-from`). Their weights are fitted with VADER's, in one logistic calibration:

    + opinion_scale * opinion_evidence + sum of the domain words' weights in the text

and the record names them: {"lexicon": "vader-3.3.2+opinion+words", "scale", "bias", "opinion_scale",
"words": {word: weight}} (a runtime that knows only VADER's record fuses no expert rather than half of one).
"""
from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from sensorium.runtime.errors import MissingExtraError
from sensorium.runtime.opinion_lexicon import OPINION, opinion_evidence, opinion_lexicon, word_evidence
from sensorium.runtime.opinion_lexicon import words as split_words

LEXICON = "vader-3.3.2"
FUSION = ("lexicon", "none")  # the `fusion` option: fuse when the model records it, or never
COMPOUND_CAP = 0.999  # atanh(+-0.999) = +-3.8: a saturated compound is strong, not infinite
VADER_ALPHA = 15.0  # VADER's normalisation: compound = x / sqrt(x^2 + alpha)
CHUNK_CHARS = 1_000  # VADER reads a longer text a run of this size at a time ...
MAX_CHARS = 20_000  # ... and no more of it than this (1,000 characters of emoji take up to ~0.3 s)
WORDS = "words"  # a domain's own words in a record's lexicon name
MAX_WORDS = 50_000  # a record with more domain words is malformed
MAX_WORD_CHARS = 100


class Expert(NamedTuple):
    """The lexicon expert's calibration: its log-odds of positive are
    scale * atanh(VADER's compound) + opinion_scale * opinion evidence + domain words' weights + bias."""

    scale: float
    bias: float
    opinion_scale: float = 0.0
    words: Mapping[str, float] | None = None

    @property
    def lexicon(self) -> str:
        """The record's lexicon name: VADER's, then "+opinion" and "+words" for the opinions it adds."""
        return LEXICON + ("+" + OPINION if self.opinion_scale else "") + ("+" + WORDS if self.words else "")

    def record(self) -> dict[str, Any]:
        """The `lexicon_fusion` record of this expert (what `lexicon_fusion` reads back)."""
        return {"lexicon": self.lexicon, "scale": round(self.scale, 6), "bias": round(self.bias, 6),
                **({"opinion_scale": round(self.opinion_scale, 6)} if self.opinion_scale else {}),
                **({"words": dict(self.words)} if self.words else {})}


def _words(value: Any) -> dict[str, float] | None:
    """A record's domain words {word: finite weight}; None when malformed."""
    if not isinstance(value, dict) or not 0 < len(value) <= MAX_WORDS:
        return None
    try:
        out = {str(k): float(v) for k, v in value.items() if isinstance(k, str) and 0 < len(k) <= MAX_WORD_CHARS}
    except (TypeError, ValueError):
        return None
    return out if len(out) == len(value) and all(math.isfinite(v) for v in out.values()) else None


def lexicon_fusion(info: dict[str, Any]) -> Expert | None:
    """The lexicon expert's calibration from model metadata (or a .tflite manifest's "model"); None when the
    model has no such record, or it is malformed or names a lexicon this runtime does not know."""
    rec = info.get("lexicon_fusion")
    if rec is None and isinstance(info.get("model"), dict):
        rec = info["model"].get("lexicon_fusion")
    try:
        parts = str(rec["lexicon"]).split("+")
        if parts[0] != LEXICON or not set(parts[1:]) <= {OPINION, WORDS} or len(set(parts)) != len(parts):
            return None
        scale, bias = float(rec["scale"]), float(rec["bias"])
        opinion = float(rec["opinion_scale"]) if OPINION in parts else 0.0
        words = _words(rec["words"]) if WORDS in parts else None
    except (TypeError, KeyError, ValueError):
        return None
    if (WORDS in parts and words is None) or not all(math.isfinite(v) for v in (scale, bias, opinion)):
        return None
    if scale <= 0 or (OPINION in parts and opinion <= 0):
        return None
    return Expert(scale, bias, opinion, words)


@functools.lru_cache(maxsize=1)
def _analyzer() -> Any:
    try:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
    except ImportError:
        raise MissingExtraError("the lexicon expert of the binary head needs vaderSentiment: pip install "
                                "vaderSentiment==3.3.2 (or ask for fusion none)") from None
    return SentimentIntensityAnalyzer()


def lexicon_ready(expert: Expert | None = None) -> None:
    """Load VADER's lexicon now (once per process), and the opinion lexicon when `expert` hears it;
    MissingExtraError without vaderSentiment, a one-line DataError when the opinion lexicon is unreadable."""
    _analyzer()
    if expert is not None and expert.opinion_scale:
        opinion_lexicon()


def _parts(text: str) -> list[str]:
    """The text in runs of at most CHUNK_CHARS characters, cut at a space where one is in the run's second
    half; at most MAX_CHARS characters in all (VADER's rules take time quadratic in a run's length)."""
    text = text[:MAX_CHARS]
    parts, start = [], 0
    while start < len(text):
        end = min(start + CHUNK_CHARS, len(text))
        if end < len(text):
            cut = text.rfind(" ", start + CHUNK_CHARS // 2, end)
            end = cut + 1 if cut > start else end
        parts.append(text[start:end])
        start = end
    return parts


def _raw(compound: float) -> float:
    """The sum of valences that VADER normalised to `compound` (= x / sqrt(x^2 + 15)), clipped finite."""
    c = min(max(compound, -0.9999), 0.9999)
    return c * math.sqrt(VADER_ALPHA / (1.0 - c * c))


def compound_scores(texts: list[str]) -> np.ndarray:
    """VADER's compound score (N,) in [-1, 1] per text (0 for a text without sentiment words). A text over
    CHUNK_CHARS is scored a run at a time and the runs' valence sums are added before normalising, so
    the time grows linearly with its length (and stops at MAX_CHARS)."""
    analyzer = _analyzer()
    out = np.zeros(len(texts), np.float64)
    for i, text in enumerate(texts):
        parts = _parts(text) if len(text) > CHUNK_CHARS else [text]
        if len(parts) == 1:
            out[i] = analyzer.polarity_scores(parts[0])["compound"]
        else:
            total = sum(_raw(analyzer.polarity_scores(p)["compound"]) for p in parts)
            out[i] = total / math.sqrt(total * total + VADER_ALPHA)
    return out


def lexicon_evidence(compound: np.ndarray) -> np.ndarray:
    """atanh of the clipped compound (N,): the expert's uncalibrated log-odds."""
    return np.arctanh(np.clip(np.asarray(compound, np.float64), -COMPOUND_CAP, COMPOUND_CAP))


def lexicon_logits(texts: list[str], scale: float, bias: float, opinion_scale: float = 0.0,
                   words: Mapping[str, float] | None = None) -> np.ndarray:
    """The lexicon expert's calibrated log-odds of positive (N,) (`Expert`'s fields as arguments)."""
    out = scale * lexicon_evidence(compound_scores(texts)) + bias
    split = [split_words(t) for t in texts] if opinion_scale or words else None  # read once for both
    if opinion_scale:
        out = out + opinion_scale * opinion_evidence(texts, split=split)
    if words:
        out = out + word_evidence(texts, words, split=split)
    return out
