"""A second expert for the binary head: VADER's rule-based score, fused with the model's own log-odds.

A model trained on one corpus knows the words of its topics; a human-rated lexicon knows words in
general. The binary head (`sensorium.runtime.sentiment`) can add the two experts' calibrated log-odds,
the naive-Bayes combination of two opinions (each calibrated alone, with balanced priors):

    logit = scale * (log p(positive) - log p(negative)) + bias           the model (binary_calibration)
          + lex_scale * atanh(clip(compound, +-0.999)) + lex_bias        VADER (lexicon_fusion)

`compound` is VADER's normalised score in [-1, 1] (vaderSentiment 3.3.2, MIT: its lexicon of 7,500
human-rated words and its rules for negation, intensifiers, "but", capitals and punctuation). Its
calibration is fitted on the model's validation split at the end of training and rides in the model
metadata as `lexicon_fusion` {"lexicon": "vader-3.3.2", "scale", "bias"}; a model without that record
is not fused. The two are not fitted jointly: on the training corpus's own texts a joint fit learns to
trust the model, and that does not transfer to other domains.
"""
from __future__ import annotations

import functools
from typing import Any

import numpy as np

from sensorium.runtime.errors import MissingExtraError

LEXICON = "vader-3.3.2"
FUSION = ("lexicon", "none")  # the `fusion` option: fuse when the model records it, or never
COMPOUND_CAP = 0.999  # atanh(+-0.999) = +-3.8: a saturated compound is strong, not infinite


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


def compound_scores(texts: list[str]) -> np.ndarray:
    """VADER's compound score (N,) in [-1, 1] per text (0 for a text without sentiment words)."""
    analyzer = _analyzer()
    return np.asarray([analyzer.polarity_scores(t)["compound"] for t in texts], np.float64)


def lexicon_evidence(compound: np.ndarray) -> np.ndarray:
    """atanh of the clipped compound (N,): the expert's uncalibrated log-odds."""
    return np.arctanh(np.clip(np.asarray(compound, np.float64), -COMPOUND_CAP, COMPOUND_CAP))


def lexicon_logits(texts: list[str], scale: float, bias: float) -> np.ndarray:
    """The lexicon expert's calibrated log-odds of positive (N,)."""
    return scale * lexicon_evidence(compound_scores(texts)) + bias
