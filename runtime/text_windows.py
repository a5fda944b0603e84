"""Long texts read sentence by sentence (numpy and `re` only).

A text classifier trained on short texts (tweets) reads a long one (a review, an e-mail) badly: cut to
its window it loses the rest, and even inside the window a length it never saw in training pulls its
decision (the bundled tweet model calls long texts negative, as its long training tweets mostly are).
So a text whose subword pieces outnumber the model's training texts (`long_text_pieces`, the 99th
percentile recorded at training) is split into its sentences, each sentence is classified on its own,
and the text's probabilities are the normalised geometric mean of its sentences' (the mean of their
log-probabilities): for the binary head that is the mean of the sentences' positive-vs-negative
log-odds. Shorter texts, and texts of one sentence, are read whole as before.

Sentences end at ".", "!", "?" or "…" followed by white space, at a line break, or at an HTML `<br>`
tag (scraped reviews carry them). The patterns match in linear time, so hostile input cannot make them
backtrack; a text of more than `MAX_PARTS` sentences is read as `MAX_PARTS` runs of consecutive
sentences, so a huge text costs at most that many classifier rows.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

MAX_PARTS = 128  # classifier rows per text at most
_BOUNDARY = re.compile(r"(?<=[.!?\u2026])\s+|[\r\n]+|<br\s*/?>", re.IGNORECASE)


def sentences(text: str, max_parts: int = MAX_PARTS) -> list[str]:
    """The text's non-empty sentences, stripped; at most `max_parts` of them (consecutive sentences
    joined into that many runs of near-equal count when there are more). A text without a boundary is
    itself."""
    parts = [p.strip() for p in _BOUNDARY.split(text)]
    parts = [p for p in parts if p]
    if not parts:
        return [text]
    if len(parts) > max_parts:
        bounds = np.linspace(0, len(parts), max_parts + 1).round().astype(int)
        parts = [" ".join(parts[a:b]) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
    return parts


def plan(texts: Sequence[str], lengths: Sequence[int], limit: int,
         max_parts: int = MAX_PARTS) -> tuple[list[str], np.ndarray]:
    """(what the classifier reads, owner (M,) int: the text each row belongs to). A text of more than
    `limit` pieces (`lengths`) and more than one sentence contributes its sentences, any other text
    itself."""
    rows: list[str] = []
    owner: list[int] = []
    for i, (text, n) in enumerate(zip(texts, lengths)):
        parts = sentences(text, max_parts) if n > limit else [text]
        parts = parts if len(parts) > 1 else [text]
        rows.extend(parts)
        owner.extend([i] * len(parts))
    return rows, np.asarray(owner, np.int64)


def pool(probs: np.ndarray, owner: np.ndarray, count: int) -> np.ndarray:
    """Per text, the normalised geometric mean of its rows' probabilities: (M, C) -> (count, C) float32.
    A text of one row keeps that row's probabilities (up to float rounding)."""
    logp = np.log(np.maximum(probs.astype(np.float64), 1e-12))  # (M, C)
    sums = np.zeros((count, probs.shape[1]), np.float64)
    np.add.at(sums, owner, logp)
    mean = sums / np.maximum(np.bincount(owner, minlength=count), 1)[:, None]  # (count, C)
    mean -= mean.max(axis=1, keepdims=True)
    out = np.exp(mean)
    return (out / out.sum(axis=1, keepdims=True)).astype(np.float32)
