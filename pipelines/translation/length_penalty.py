"""Beam search's length penalty chosen on validation pairs (issue 26).

GNMT's length normalisation (`runtime.beam_search.normalised_score`, alpha) decides how long a beam
search's answer is. `runtime.beam_search.DEFAULT_LENGTH_PENALTY` (2.0) was chosen on ui-de validation for
the bundled translator; another model (more data, a longer run, averaged checkpoints) can prefer another.
`choose_length_penalty` decodes validation pairs with each alpha of a grid and keeps the best corpus chrF,
but keeps the default unless another alpha beats it by at least `min_gain` chrF: on a few hundred pairs a
smaller difference is noise. A run records the choice as its model's `length_penalty` (metadata, and so
every export's `sensorium.json`), which a `Translator` uses when the caller gives none.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_GRID = (0.6, 1.0, 1.4, 2.0, 2.6)
MIN_GAIN = 0.2  # chrF points another alpha must gain over the default to be chosen


@dataclass
class LengthPenaltyChoice:
    """The alpha chosen, the corpus chrF of every alpha tried, on `pairs` pairs at beam `beam`."""

    alpha: float
    chrf: dict[float, float]
    pairs: int
    beam: int

    def summary(self) -> dict[str, Any]:
        """The manifest's record: {"chosen", "chrf": {alpha: chrF}, "pairs", "beam"}."""
        return {"chosen": self.alpha, "chrf": {f"{a:g}": round(c, 4) for a, c in self.chrf.items()},
                "pairs": self.pairs, "beam": self.beam}


def choose_length_penalty(translator: Any, sources: list[str], references: list[str], *,
                          grid: tuple[float, ...] | list[float] = DEFAULT_GRID, beam: int = 4,
                          min_gain: float = MIN_GAIN) -> LengthPenaltyChoice:
    """Decode `sources` with `translator` (a runtime `Translator`; its `length_penalty` is restored
    afterwards) at `beam` for each alpha of `grid` (the default alpha is always tried) and score corpus
    chrF against `references`. The best alpha wins only by `min_gain` or more over the default."""
    from sensorium.pipelines.common.progress import progress
    from sensorium.pipelines.translation.evaluate import corpus_scores
    from sensorium.runtime.beam_search import DEFAULT_LENGTH_PENALTY

    if not sources or len(sources) != len(references):
        raise ValueError("choose_length_penalty needs as many references as sources, at least one")
    alphas = sorted({float(a) for a in grid} | {DEFAULT_LENGTH_PENALTY})
    before = translator.length_penalty
    scores: dict[float, float] = {}
    try:
        for alpha in progress(alphas, desc="length penalty", unit="alpha"):
            translator.length_penalty = alpha
            scores[alpha] = float(corpus_scores(translator.translate(sources, beam=beam), references)["chrf"])
            log.info("length penalty %g: validation chrF %.2f (beam %d, %d pairs)", alpha, scores[alpha], beam,
                     len(sources))
    finally:
        translator.length_penalty = before
    best = max(alphas, key=lambda a: (scores[a], -abs(a - DEFAULT_LENGTH_PENALTY)))
    chosen = best if scores[best] - scores[DEFAULT_LENGTH_PENALTY] >= min_gain else DEFAULT_LENGTH_PENALTY
    log.info("length penalty %g chosen (default %g: chrF %.2f; best %g: %.2f)", chosen, DEFAULT_LENGTH_PENALTY,
             scores[DEFAULT_LENGTH_PENALTY], best, scores[best])
    return LengthPenaltyChoice(chosen, scores, len(sources), beam)
