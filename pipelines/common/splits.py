"""Seeded, stratified splitting of sources that have no splits of their own."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)


def stratified_split(
    labels: Sequence[int] | np.ndarray | None,
    n: int,
    seed: int,
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
) -> dict[str, np.ndarray]:
    """Split indices 0..n-1 into train/validation/test, per class when labels are given.

    Each class is shuffled with `seed` and cut by largest-remainder rounding, so every split gets its
    share of every class (a class with k items gives validation/test at least one item when k >= 3).
    Returns sorted index arrays.
    """
    if not np.isclose(sum(fractions), 1.0) or min(fractions) < 0:
        raise ValueError(f"split fractions must be non-negative and sum to 1, got {fractions}")
    rng = np.random.default_rng(seed)
    groups = [np.arange(n)] if labels is None else [np.flatnonzero(np.asarray(labels) == c)
                                                    for c in np.unique(np.asarray(labels))]
    parts: dict[str, list[np.ndarray]] = {"train": [], "validation": [], "test": []}
    for idx in groups:
        idx = rng.permutation(idx)
        k = len(idx)
        n_val = int(round(k * fractions[1]))
        n_test = int(round(k * fractions[2]))
        if k >= 3:
            n_val = max(n_val, 1) if fractions[1] > 0 else 0
            n_test = max(n_test, 1) if fractions[2] > 0 else 0
        n_train = k - n_val - n_test
        parts["train"].append(idx[:n_train])
        parts["validation"].append(idx[n_train : n_train + n_val])
        parts["test"].append(idx[n_train + n_val :])
    return {name: np.sort(np.concatenate(p)) if p else np.array([], int) for name, p in parts.items()}


def holdout(labels: np.ndarray, seed: int, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Carve a stratified validation part of `fraction` out of a train split: (train_idx, val_idx)."""
    parts = stratified_split(labels, len(labels), seed, (1.0 - fraction, fraction, 0.0))
    return parts["train"], parts["validation"]
