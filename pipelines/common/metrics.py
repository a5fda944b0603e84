"""Classification metrics, a terminal report and a bootstrap helper (numpy only, no TensorFlow)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["classification_metrics", "format_classification_report", "bootstrap_ci"]


def _validate_inputs(y_true: Any, probs: Any, labels: Sequence[str], top_k: int) -> tuple[np.ndarray, np.ndarray]:
    """Check shapes, dtypes and ranges; return (y_true as int64 (N,), probs as float64 (N, C))."""
    y = np.asarray(y_true)
    p = np.asarray(probs)
    if y.ndim != 1:
        raise ValueError(f"y_true must be 1-D (N,), got shape {y.shape}")
    if p.ndim != 2:
        raise ValueError(f"probs must be 2-D (N, C), got shape {p.shape}")
    n, c = p.shape
    if y.shape[0] != n:
        raise ValueError(f"y_true has {y.shape[0]} items but probs has {n} rows")
    if n == 0:
        raise ValueError("cannot compute metrics on zero examples")
    if c == 0:
        raise ValueError("probs has zero classes (C == 0)")
    if len(labels) != c:
        raise ValueError(f"got {len(labels)} labels but probs has {c} columns")
    if len(set(labels)) != len(labels):
        raise ValueError("labels must be unique")
    if not isinstance(top_k, (int, np.integer)) or isinstance(top_k, bool) or top_k < 1:
        raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise ValueError("y_true must hold integer class indices")
    elif y.dtype.kind not in "iub":
        raise ValueError(f"y_true must hold integer class indices, got dtype {y.dtype}")
    y = y.astype(np.int64)
    if y.min() < 0 or y.max() >= c:
        raise ValueError(f"y_true values must lie in [0, {c}), got range [{y.min()}, {y.max()}]")
    if p.dtype.kind not in "fiub":
        raise ValueError(f"probs must be numeric, got dtype {p.dtype}")
    p = p.astype(np.float64)
    if not np.all(np.isfinite(p)):
        raise ValueError("probs contains NaN or infinite values")
    return y, p


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Element-wise num / den with 0.0 where den == 0."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.zeros_like(num)
    np.divide(num, den, out=out, where=den != 0)
    return out


def classification_metrics(
    y_true: np.ndarray,
    probs: np.ndarray,
    labels: list[str],
    top_k: int = 5,
) -> dict[str, Any]:
    """Accuracy, top-k accuracy, per-class and averaged P/R/F1 and the confusion matrix.

    The prediction is ``argmax(probs)``. Macro averages are taken over all ``C`` classes
    (classes with no support count as 0.0); zero divisions give 0.0. The top-k key is
    ``f"top_{min(top_k, C)}_accuracy"``. The result holds only Python scalars, lists and dicts,
    so it can be written with ``json.dump``. Raises ``ValueError`` on malformed inputs.
    """
    y, p = _validate_inputs(y_true, probs, labels, top_k)
    n, c = p.shape
    pred = np.argmax(p, axis=1)

    cm = np.zeros((c, c), dtype=np.int64)
    np.add.at(cm, (y, pred), 1)

    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)  # true count per class
    predicted = cm.sum(axis=0)  # predicted count per class
    precision = _safe_div(tp, predicted)
    recall = _safe_div(tp, support)
    f1 = _safe_div(2.0 * precision * recall, precision + recall)

    k = min(int(top_k), c)
    # Stable sort on -probs: among ties the lower class index ranks first, as argmax does.
    topk_idx = np.argsort(-p, axis=1, kind="stable")[:, :k]
    top_k_acc = float(np.mean(np.any(topk_idx == y[:, None], axis=1)))

    per_class = {
        str(label): {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, label in enumerate(labels)
    }
    return {
        "accuracy": float(tp.sum() / n),
        f"top_{k}_accuracy": top_k_acc,
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "macro_f1": float(f1.mean()),
        "weighted_f1": float(np.sum(f1 * support) / support.sum()),
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
        "labels": [str(label) for label in labels],
    }


def format_classification_report(metrics: dict[str, Any]) -> str:
    """Render a ``classification_metrics`` dict as an aligned plain-text table."""
    per_class: dict[str, dict[str, Any]] = metrics.get("per_class", {})
    labels = list(metrics.get("labels") or per_class.keys())
    total = sum(int(per_class[l]["support"]) for l in labels if l in per_class)

    name_w = max([len("macro avg"), len("weighted avg")] + [len(str(l)) for l in labels])
    sup_w = max(len("support"), len(str(total)))
    header = f"{'':<{name_w}}  {'precision':>9}  {'recall':>9}  {'f1':>9}  {'support':>{sup_w}}"

    def row(name: str, prec: Any, rec: Any, f1: Any, sup: Any) -> str:
        def cell(v: Any) -> str:
            return f"{v:>9.4f}" if isinstance(v, (int, float)) else f"{'':>9}"

        return f"{name:<{name_w}}  {cell(prec)}  {cell(rec)}  {cell(f1)}  {str(sup):>{sup_w}}"

    lines: list[str] = []
    if "accuracy" in metrics:
        lines.append(f"accuracy: {metrics['accuracy']:.4f}")
    for key in sorted(k for k in metrics if k.startswith("top_") and k.endswith("_accuracy")):
        lines.append(f"{key.replace('_', '-', 1).replace('_', ' ')}: {metrics[key]:.4f}")
    lines.append("")
    lines.append(header)
    lines.append("-" * len(header))
    for label in labels:
        m = per_class.get(label)
        if m is None:
            continue
        lines.append(row(str(label), m["precision"], m["recall"], m["f1"], m["support"]))
    lines.append("-" * len(header))
    lines.append(
        row(
            "macro avg",
            metrics.get("macro_precision"),
            metrics.get("macro_recall"),
            metrics.get("macro_f1"),
            total,
        )
    )
    if "weighted_f1" in metrics:
        lines.append(row("weighted avg", None, None, metrics["weighted_f1"], total))
    return "\n".join(lines)


def bootstrap_ci(
    values_fn: Callable[[np.ndarray], float],
    n_items: int,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float]:
    """Percentile bootstrap interval: resample ``n_items`` indices with replacement ``n_boot`` times.

    ``values_fn(indices)`` returns the statistic for one resample (``indices`` is an int array
    of length ``n_items``). Non-finite statistics are dropped; if none are finite, returns
    ``(nan, nan)``. Deterministic for a given ``seed``.
    """
    if n_items < 1:
        raise ValueError(f"n_items must be >= 1, got {n_items}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    rng = np.random.default_rng(seed)
    stats = np.empty(n_boot, dtype=np.float64)
    for b in range(n_boot):
        idx = rng.integers(0, n_items, size=n_items)
        stats[b] = float(values_fn(idx))
    finite = stats[np.isfinite(stats)]
    if finite.size < stats.size:
        logger.warning("bootstrap_ci: dropped %d non-finite statistics of %d", stats.size - finite.size, stats.size)
    if finite.size == 0:
        return float("nan"), float("nan")
    low, high = np.percentile(finite, [100.0 * alpha / 2.0, 100.0 * (1.0 - alpha / 2.0)])
    return float(low), float(high)
