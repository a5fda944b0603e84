"""The binary (positive vs negative) head of a sentiment model: a two-parameter logistic calibration of
the model's positive-vs-negative log-odds, fitted with balanced priors on held-out texts.

    p(positive) = sigmoid(scale * (log p(positive) - log p(negative)) + bias)

Balanced priors (each class weighs half) keep the training corpus's label mix (the tweets are 70%
negative among the polar ones) out of the binary decision. The runtime applies it
(`sensorium.runtime.sentiment.binary_probability`); the fitted values ride in the model's metadata.
`train sentiment` fits it at the end of training; for a run trained before, this fits it on the run's
own validation split (read as its config.json says) and records it, weights unchanged:

    python -m sensorium.pipelines.sentiment.calibration --model RUN [--fusion lexicon|none] [--expert E]
    sensorium export --model RUN --format tflite      # the exports carry the record

With `--fusion lexicon` (the default; `train sentiment` does the same) it also fits the lexicon expert
that the binary head adds (`sensorium.runtime.lexicon_fusion`) and records it as `lexicon_fusion`. The
expert is fitted on the training and the validation texts (`expert_items`, at most EXPERT_TEXTS): VADER
learns from neither, so both are out of its sample (a user's 200 texts give it 180, not 20). Each fit
is pulled towards a prior calibration with an L2 weight of PRIOR_TEXTS / (the polar texts): training
pulls a warm start's (`--init-from`) lexicon expert towards its source model's, so a few texts adjust
it without running it off; everything else, the binary head of a warm start and this recorder
included, towards the uncalibrated score (scale 1, bias 0). A warm start whose validation texts are too
few to fit the head records it uncorrected, and the source's expert when its training and validation
texts together are too few for the expert as well.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np

from sensorium.runtime.sentiment import binary_probability

log = logging.getLogger(__name__)

MIN_PER_CLASS = 10  # fewer polar texts of either class: no calibration (scale 1, bias 0)
# The L2 pull towards the prior calibration is PRIOR_TEXTS / (polar texts): 0.01 for 1,000 texts, 0.5 for 20.
PRIOR_TEXTS = 10.0
# The lexicon expert is fitted on at most this many texts: VADER scores 20,000 tweets in about 0.5 s and
# 20,000 IMDb-length reviews (1,300 characters) in about 21 s.
EXPERT_TEXTS = 20_000
# What the lexicon expert hears besides VADER (`train sentiment --expert`; `auto` is the first for a model
# trained from scratch, the last for one adapted to a domain with --init-from).
OPINIONS = ("vader", "vader+opinion", "vader+opinion+words")
# The domain's own words: a logistic regression over word presence (C: L2), cross-fitted in WORDS_FOLDS,
# learned only from at least WORDS_MIN_PER_CLASS texts of each class, over at most WORDS_MAX words.
WORDS_C = 0.1
WORDS_FOLDS = 5
WORDS_MIN_PER_CLASS = 20
WORDS_MAX = 5_000


def fit_balanced_logistic(x: np.ndarray, y: np.ndarray, *, prior: tuple[float, ...] = (1.0, 0.0),
                          prior_texts: float = PRIOR_TEXTS, iterations: int = 100) -> tuple[float, ...] | None:
    """(scale, bias) of p(y=1) = sigmoid(scale * x + bias) fitted on x (M,), y (M,) 0/1 with balanced
    priors (each class weighs half) and an L2 pull towards `prior` ((1, 0): the uncalibrated score; a
    warm start's lexicon expert: its source model's) of strength `prior_texts` / M (the log-loss is a
    mean), so that a few texts move it little and thousands move it freely; None when it does not
    converge to a positive scale. With K scores, x (M, K), it fits K scales and a bias (`prior` has K + 1
    values) and returns (scale_1, ..., scale_K, bias), None unless every scale is positive.

    Newton's method with a backtracking line search: every step lowers the (strictly convex) objective.
    Plain Newton steps overshoot when the scores are large (a model trained with heavy dropout, margins of
    +-12) and can cycle between two points thousands of times too large."""
    y = np.asarray(y, np.float64)
    n_pos, n_neg = float(y.sum()), float(len(y) - y.sum())
    l2 = prior_texts / max(len(y), 1)
    x = np.asarray(x, np.float64).reshape(len(y), -1)  # (M, K)
    xx = np.concatenate([x, np.ones((len(y), 1))], axis=1)  # (M, K + 1)
    w = np.where(y == 1, 0.5 / n_pos, 0.5 / n_neg)  # balanced: each class sums to 1/2
    prior = np.asarray(prior, np.float64)
    if prior.shape != (xx.shape[1],):
        raise ValueError(f"prior has {prior.size} values for {x.shape[1]} scores and a bias")

    def objective(t: np.ndarray) -> tuple[float, np.ndarray]:
        """The objective at t, and the scores z = xx @ t (M,) it read (the next Newton step's too)."""
        z = xx @ t
        return float(np.sum(w * (np.logaddexp(0.0, z) - y * z)) + 0.5 * l2 * np.sum((t - prior) ** 2)), z

    theta, converged = prior.copy(), False
    value, z = objective(theta)
    for _ in range(iterations):
        q = 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))
        grad = xx.T @ (w * (q - y)) + l2 * (theta - prior)
        if np.abs(grad).max() < 1e-9:
            converged = True
            break
        hess = (xx * (w * q * (1 - q))[:, None]).T @ xx + l2 * np.eye(len(theta))
        step = np.linalg.solve(hess, grad)
        rate = 1.0
        while rate > 1e-10:  # backtracking (Armijo): the full step unless it fails to lower the objective
            candidate = theta - rate * step
            new, z_new = objective(candidate)
            if new <= value - 1e-4 * rate * float(grad @ step):
                break
            rate *= 0.5
        else:
            converged = True  # no step lowers it further: at the minimum up to rounding
            break
        theta, value, z = candidate, new, z_new
        if np.abs(rate * step).max() < 1e-10:
            converged = True
            break
    if not converged or not np.all(np.isfinite(theta)) or np.any(theta[:-1] <= 0):
        return None
    return tuple(float(t) for t in theta)


def _polar(labels: np.ndarray, label_names: list[str]) -> tuple[np.ndarray, np.ndarray] | None:
    """(mask of the positive and negative texts (N,), 1 for positive (M,)); None when the names lack either
    label or either class has fewer than MIN_PER_CLASS texts."""
    if "positive" not in label_names or "negative" not in label_names:
        return None
    pos, neg = label_names.index("positive"), label_names.index("negative")
    keep = (labels == pos) | (labels == neg)
    y = (labels[keep] == pos).astype(np.float64)
    return (keep, y) if min(int(y.sum()), int(len(y) - y.sum())) >= MIN_PER_CLASS else None


def _fitted(what: str, fit: tuple[float, ...] | None, y: np.ndarray, **extra: Any) -> dict[str, Any] | None:
    if fit is None:
        log.warning("%s: the calibration did not converge to a positive scale; left out", what)
        return None
    return {**extra, "scale": round(fit[0], 6), "bias": round(fit[-1], 6), "negative": int(len(y) - y.sum()),
            "positive": int(y.sum()), "priors": "balanced"}


def fit_binary_calibration(probs: np.ndarray, labels: np.ndarray, label_names: list[str], *,
                           prior: tuple[float, float] = (1.0, 0.0)) -> dict[str, Any] | None:
    """{"scale", "bias", "negative", "positive"} fitted on the texts labelled positive or negative
    (probs (N, C), labels (N,) indices into `label_names`), pulled towards `prior` (see
    `fit_balanced_logistic`); None when the names lack either label or either class has fewer than
    MIN_PER_CLASS texts."""
    polar = _polar(labels, label_names)
    if polar is None:
        return None
    keep, y = polar
    p = np.asarray(probs, np.float64)[keep]
    pos, neg = label_names.index("positive"), label_names.index("negative")
    margin = np.log(np.maximum(p[:, pos], 1e-12)) - np.log(np.maximum(p[:, neg], 1e-12))  # (M,)
    return _fitted("binary head", fit_balanced_logistic(margin, y, prior=prior), y)


def fit_domain_words(texts: list[str], y: np.ndarray, *, seed: int = 0) -> tuple[np.ndarray, dict[str, float], float]:
    """A domain's own words, learned from its labelled `texts` (y (M,) 0/1): a logistic regression over which
    words a text holds (the WORDS_MAX most frequent of those in at least 2 texts; balanced classes, L2 with
    C = WORDS_C). Returns (out-of-fold log-odds (M,) from WORDS_FOLDS models that did not see each text,
    {word: weight} and the intercept of the model fitted on all of them)."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    from sensorium.runtime.lexicon_fusion import MAX_WORD_CHARS
    from sensorium.runtime.opinion_lexicon import words

    def short_words(text: str) -> list[str]:  # a longer word would make the runtime refuse the whole record
        return [w for w in words(text) if len(w) <= MAX_WORD_CHARS]

    vectorizer = CountVectorizer(tokenizer=short_words, lowercase=False, token_pattern=None, binary=True,
                                 min_df=2, max_features=WORDS_MAX)
    x = vectorizer.fit_transform(texts)  # (M, V) 0/1
    y = np.asarray(y, int)

    def model() -> Any:
        return LogisticRegression(C=WORDS_C, class_weight="balanced", max_iter=2000)

    oof = np.zeros(len(y), np.float64)
    for train_idx, held in StratifiedKFold(WORDS_FOLDS, shuffle=True, random_state=seed).split(x, y):
        oof[held] = model().fit(x[train_idx], y[train_idx]).decision_function(x[held])
    full = model().fit(x, y)
    weights = dict(zip(vectorizer.get_feature_names_out().tolist(), full.coef_[0].tolist()))
    return oof, weights, float(full.intercept_[0])


def fit_lexicon_fusion(texts: list[str], labels: np.ndarray, label_names: list[str], *,
                       prior: tuple[float, ...] = (1.0, 0.0), opinions: str = "vader",
                       seed: int = 0) -> dict[str, Any] | None:
    """The lexicon expert's calibration (`sensorium.runtime.lexicon_fusion`), fitted alone on the
    positive and negative `texts`, pulled towards `prior` (an `Expert` or (scale, bias)); None as
    `fit_binary_calibration`. `opinions` (OPINIONS) names what it hears besides VADER: the opinion lexicon
    ("+opinion") and the texts' own words ("+words", out of fold; only with WORDS_MIN_PER_CLASS texts of
    each class). An opinion whose fitted weight is not positive is dropped (the last one first)."""
    from sensorium.runtime.lexicon_fusion import Expert, compound_scores, lexicon_evidence
    from sensorium.runtime.opinion_lexicon import opinion_evidence

    if opinions not in OPINIONS:
        raise ValueError(f"opinions must be one of {', '.join(OPINIONS)}, not {opinions!r}")
    polar = _polar(labels, label_names)
    if polar is None:
        return None
    keep, y = polar
    kept = [t for t, k in zip(texts, keep) if k]
    source = prior if isinstance(prior, Expert) else Expert(*prior)
    scores = [lexicon_evidence(compound_scores(kept))]  # (M,) each
    pulls = [source.scale]
    names = ["vader"]
    if "opinion" in opinions:
        scores.append(opinion_evidence(kept))
        pulls.append(source.opinion_scale)
        names.append("opinion")
    domain = None
    if "words" in opinions and min(int(y.sum()), int(len(y) - y.sum())) >= WORDS_MIN_PER_CLASS:
        oof, weights, intercept = fit_domain_words(kept, y, seed=seed)
        scores.append(oof)
        pulls.append(1.0)  # out-of-fold log-odds are already on the log-odds scale
        names.append("words")
        domain = (weights, intercept)
    elif "words" in opinions:
        log.info("lexicon expert: too few texts to learn the domain's words (under %d of a class)",
                 WORDS_MIN_PER_CLASS)
    while True:
        fit = fit_balanced_logistic(np.stack(scores, axis=1), y, prior=(*pulls, source.bias))
        if fit is not None or len(scores) == 1:
            break
        log.info("lexicon expert: %s left out (its weight was not positive)", names[-1])
        scores, pulls, names = scores[:-1], pulls[:-1], names[:-1]
        domain = None if names[-1] != "words" else domain
    if fit is None:
        return _fitted("lexicon expert", None, y)
    weights_of = dict(zip(names, fit[:-1]))
    bias = fit[-1]
    words = None
    if "words" in weights_of and domain is not None:
        scale = weights_of["words"]
        words = {w: round(scale * v, 6) for w, v in domain[0].items() if abs(scale * v) >= 1e-6}
        bias += scale * domain[1]
    expert = Expert(weights_of["vader"], bias, weights_of.get("opinion", 0.0), words or None)
    record = {**_fitted("lexicon expert", (expert.scale, expert.bias), y), **expert.record()}
    if expert.words:
        record["words_scale"] = round(weights_of["words"], 6)
    return record


def expert_items(splits: list[Any], *, limit: int = EXPERT_TEXTS, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """(texts, labels (N,)) the lexicon expert is fitted on: those of every split given (a run's training
    and validation splits, whose label names agree), at most `limit` of them drawn with `seed` (in their
    order when all fit)."""
    texts = [t for s in splits for t in s.items.texts]
    labels = np.concatenate([np.asarray(s.items.labels) for s in splits])
    if len(texts) <= limit:
        return texts, labels
    keep = np.sort(np.random.default_rng(seed).permutation(len(texts))[:limit])
    return [texts[i] for i in keep], labels[keep]


def fit_expert(splits: list[Any], *, prior: tuple[float, ...] = (1.0, 0.0), opinions: str = "vader",
               seed: int = 0) -> dict[str, Any] | None:
    """The lexicon expert (hearing `opinions`) fitted on the texts of a run's training and validation
    `splits` (`expert_items`), pulled towards `prior`; its record says what it was fitted on (`fitted_on`;
    a record without it, from before, was fitted on the validation texts). None as `fit_lexicon_fusion`."""
    texts, labels = expert_items(splits, seed=seed)
    fusion = fit_lexicon_fusion(texts, labels, splits[-1].labels, prior=prior, opinions=opinions, seed=seed)
    return {**fusion, "fitted_on": "training and validation texts"} if fusion is not None else None


def binary_accuracy(probs: np.ndarray, labels: np.ndarray, label_names: list[str],
                    calibration: dict[str, Any] | None) -> float:
    """Balanced accuracy of the binary head on the positive and negative texts (for logs and tests)."""
    pos, neg = label_names.index("positive"), label_names.index("negative")
    keep = (labels == pos) | (labels == neg)
    cal = calibration or {"scale": 1.0, "bias": 0.0}
    p = binary_probability(np.asarray(probs)[keep], label_names, cal["scale"], cal["bias"])
    y = labels[keep] == pos
    return float(np.mean([np.mean(p[y] >= 0.5), np.mean(p[~y] < 0.5)]))


def _splits(model: str | Path, artifact: Any, labels: list[str] | None) -> tuple[Any, Any, int]:
    """(training split, validation split, seed) of the sentiment run, read as its config.json says
    (ModelError without one)."""
    from sensorium.pipelines.common.artifacts import run_config
    from sensorium.pipelines.sentiment.config import SentimentConfig
    from sensorium.pipelines.sentiment.data import load_train_validation
    from sensorium.runtime.errors import ModelError

    cfg = run_config(artifact, SentimentConfig)
    if cfg is None:
        raise ModelError(f"{model}: no config.json to find its training and validation texts")
    return (*load_train_validation(cfg.data, seed=cfg.seed, label_names=labels), cfg.seed)


def _too_few(model: str | Path, where: str = "its validation split has") -> Exception:
    from sensorium.runtime.errors import DataError

    return DataError(f"{model}: {where} too few positive or negative texts "
                     f"(at least {MIN_PER_CLASS} of each) or its labels lack them")


def record_binary_calibration(model: str | Path) -> dict[str, Any]:
    """Fit the binary head on the sentiment run `model`'s validation split, read by the run's own
    classifier (long texts as it reads them), and write it into the run's model.keras (atomically);
    returns the calibration written."""
    from sensorium.pipelines.common.run_info import record_value
    from sensorium.pipelines.sentiment.predict import load

    def compute(info: dict[str, Any], artifact: Any) -> dict[str, Any]:
        classifier = load(artifact)
        val_split = _splits(model, artifact, classifier.labels)[1]
        probs = classifier.predict(val_split.items.texts)  # (N, C)
        cal = fit_binary_calibration(probs, val_split.items.labels, classifier.labels)
        if cal is None:
            raise _too_few(model)
        log.info("binary head: scale %.3f, bias %+.3f (balanced accuracy on validation %.4f, uncalibrated %.4f)",
                 cal["scale"], cal["bias"], binary_accuracy(probs, val_split.items.labels, classifier.labels, cal),
                 binary_accuracy(probs, val_split.items.labels, classifier.labels, None))
        return cal

    return dict(record_value(model, "sentiment", "binary_calibration", None, compute))


def record_lexicon_fusion(model: str | Path, opinions: str = "vader") -> dict[str, Any]:
    """Fit the lexicon expert (hearing `opinions`) on the sentiment run `model`'s training and validation
    texts (`expert_items`) and write it into the run's model.keras as `lexicon_fusion` (atomically);
    returns the record written."""
    from sensorium.pipelines.common.run_info import record_value

    def compute(info: dict[str, Any], artifact: Any) -> dict[str, Any]:
        train_split, val_split, seed = _splits(model, artifact, artifact.labels or None)
        fusion = fit_expert([train_split, val_split], opinions=opinions, seed=seed)
        if fusion is None:
            raise _too_few(model, "its training and validation texts have")
        log.info("lexicon expert (%s): scale %.3f, bias %+.3f", fusion["lexicon"], fusion["scale"], fusion["bias"])
        return fusion

    return dict(record_value(model, "sentiment", "lexicon_fusion", None, compute))


def main(argv: list[str] | None = None) -> int:
    from sensorium.pipelines.common.run_info import recorder_main

    def record(args: argparse.Namespace) -> str:
        cal = record_binary_calibration(args.model)
        line = f"{args.model}: binary_calibration scale {cal['scale']:.3f} bias {cal['bias']:+.3f}"
        if args.fusion == "lexicon":
            fusion = record_lexicon_fusion(args.model, args.expert)
            line += f"; lexicon_fusion {fusion['lexicon']} scale {fusion['scale']:.3f} bias {fusion['bias']:+.3f}"
        return line

    return recorder_main(argv, module="sensorium.pipelines.sentiment.calibration", doc=__doc__, task="sentiment",
                         options=_options, record=record)


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fusion", choices=("lexicon", "none"), default="lexicon",
                        help="lexicon (default): also fit and record the lexicon expert of the binary head")
    parser.add_argument("--expert", choices=OPINIONS, default="vader",
                        help="what the lexicon expert hears besides VADER (default: %(default)s)")


if __name__ == "__main__":
    sys.exit(main())
