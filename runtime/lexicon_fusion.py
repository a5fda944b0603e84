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
"""
from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from sensorium.runtime.errors import MissingExtraError

LEXICON = "vader-3.3.2"
FUSION = ("lexicon", "none")  # the `fusion` option: fuse when the model records it, or never
COMPOUND_CAP = 0.999  # atanh(+-0.999) = +-3.8: a saturated compound is strong, not infinite
VADER_ALPHA = 15.0  # VADER's normalisation: compound = x / sqrt(x^2 + alpha)
CHUNK_CHARS = 1_000  # VADER reads a longer text a run of this size at a time ...
MAX_CHARS = 20_000  # ... and no more of it than this (1,000 characters of emoji take up to ~0.3 s)


def lexicon_fusion(info: dict[str, Any]) -> tuple[float, float] | None:
    """(scale, bias) of the lexicon expert from model metadata (or a .tflite manifest's "model"); None when
    the model has no such record, or it is malformed or names another lexicon."""
    rec = info.get("lexicon_fusion")
    if rec is None and isinstance(info.get("model"), dict):
        rec = info["model"].get("lexicon_fusion")
    try:
        if rec["lexicon"] != LEXICON:
            return None
        scale, bias = float(rec["scale"]), float(rec["bias"])
    except (TypeError, KeyError, ValueError):
        return None
    return (scale, bias) if np.isfinite(scale) and np.isfinite(bias) and scale > 0 else None


@functools.lru_cache(maxsize=1)
def _analyzer() -> Any:
    try:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
    except ImportError:
        raise MissingExtraError("the lexicon expert of the binary head needs vaderSentiment: pip install "
                                "vaderSentiment==3.3.2 (or ask for fusion none)") from None
    return SentimentIntensityAnalyzer()


def lexicon_ready() -> None:
    """Load VADER's lexicon now (once per process); MissingExtraError without vaderSentiment."""
    _analyzer()


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


def lexicon_logits(texts: list[str], scale: float, bias: float) -> np.ndarray:
    """The lexicon expert's calibrated log-odds of positive (N,)."""
    return scale * lexicon_evidence(compound_scores(texts)) + bias
