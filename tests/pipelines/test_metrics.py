"""Tests for sensorium.pipelines.common.metrics (numpy only)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from sensorium.pipelines.common.metrics import bootstrap_ci, classification_metrics, format_classification_report

LABELS = ["cat", "dog", "owl"]
# y_true = [0, 0, 0, 1, 1, 2]; argmax predictions = [0, 0, 1, 1, 1, 0].
Y_TRUE = np.array([0, 0, 0, 1, 1, 2])
PROBS = np.array(
    [
        [0.7, 0.2, 0.1],
        [0.6, 0.3, 0.1],
        [0.3, 0.6, 0.1],  # wrong, but the true class is 2nd
        [0.1, 0.8, 0.1],
        [0.2, 0.5, 0.3],
        [0.5, 0.4, 0.1],  # wrong, true class is last
    ]
)


def test_hand_computed_three_class_example() -> None:
    m = classification_metrics(Y_TRUE, PROBS, LABELS, top_k=2)
    assert m["confusion_matrix"] == [[2, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert m["labels"] == LABELS
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["top_2_accuracy"] == pytest.approx(5 / 6)
    pc = m["per_class"]
    assert pc["cat"] == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3})
    assert pc["dog"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2})
    # "owl" is never predicted: precision 0/0 -> 0.0, and f1 0.0.
    assert pc["owl"] == pytest.approx({"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1})
    assert m["macro_precision"] == pytest.approx(4 / 9)
    assert m["macro_recall"] == pytest.approx(5 / 9)
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 3)
    assert m["weighted_f1"] == pytest.approx((3 * 2 / 3 + 2 * 0.8) / 6)
    assert isinstance(pc["owl"]["support"], int)


def test_top_k_is_clipped_to_number_of_classes() -> None:
    m = classification_metrics(Y_TRUE, PROBS, LABELS)  # top_k=5 > C=3
    assert "top_3_accuracy" in m and "top_5_accuracy" not in m
    assert m["top_3_accuracy"] == 1.0
    m1 = classification_metrics(Y_TRUE, PROBS, LABELS, top_k=1)
    assert m1["top_1_accuracy"] == pytest.approx(m1["accuracy"])


def test_binary_still_reports_top_k() -> None:
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    m = classification_metrics(np.array([0, 1, 1]), probs, ["neg", "pos"])
    assert m["top_2_accuracy"] == 1.0
    assert m["accuracy"] == pytest.approx(2 / 3)


def test_zero_division_gives_zero_not_nan() -> None:
    # Class "c" has no support and is never predicted; class "b" is predicted but never true.
    y = np.array([0, 0, 0])
    probs = np.array([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.8, 0.1, 0.1]])
    m = classification_metrics(y, probs, ["a", "b", "c"])
    for label in ("b", "c"):
        assert m["per_class"][label] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert m["per_class"]["a"]["precision"] == 1.0
    assert m["per_class"]["a"]["recall"] == pytest.approx(2 / 3)
    values = [m["macro_precision"], m["macro_recall"], m["macro_f1"], m["weighted_f1"]]
    assert all(math.isfinite(v) for v in values)
    assert m["macro_precision"] == pytest.approx(1 / 3)


def test_result_is_json_serialisable() -> None:
    m = classification_metrics(Y_TRUE.astype(np.int32), PROBS.astype(np.float32), LABELS)
    assert json.loads(json.dumps(m)) == m


@pytest.mark.parametrize("seed,n,c", [(0, 200, 7), (1, 50, 4), (2, 500, 12)])
def test_agrees_with_sklearn(seed: int, n: int, c: int) -> None:
    skm = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, size=n)
    logits = rng.normal(size=(n, c))
    logits[np.arange(n), y] += 1.0  # better than chance, so metrics are non-trivial
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = [f"class_{i}" for i in range(c)]
    pred = probs.argmax(axis=1)

    m = classification_metrics(y, probs, labels, top_k=3)
    all_labels = list(range(c))
    p, r, f, s = skm.precision_recall_fscore_support(y, pred, labels=all_labels, zero_division=0)
    np.testing.assert_allclose([m["per_class"][l]["precision"] for l in labels], p)
    np.testing.assert_allclose([m["per_class"][l]["recall"] for l in labels], r)
    np.testing.assert_allclose([m["per_class"][l]["f1"] for l in labels], f)
    assert [m["per_class"][l]["support"] for l in labels] == s.tolist()
    assert m["confusion_matrix"] == skm.confusion_matrix(y, pred, labels=all_labels).tolist()
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["macro_f1"] == pytest.approx(skm.f1_score(y, pred, labels=all_labels, average="macro", zero_division=0))
    assert m["macro_precision"] == pytest.approx(
        skm.precision_score(y, pred, labels=all_labels, average="macro", zero_division=0)
    )
    assert m["weighted_f1"] == pytest.approx(
        skm.f1_score(y, pred, labels=all_labels, average="weighted", zero_division=0)
    )
    assert m["top_3_accuracy"] == pytest.approx(skm.top_k_accuracy_score(y, probs, k=3, labels=all_labels))


@pytest.mark.parametrize(
    "y,probs,labels,top_k,match",
    [
        (np.array([[0, 1]]), np.ones((2, 3)), LABELS, 5, "1-D"),
        (np.array([0, 1]), np.ones(3), LABELS, 5, "2-D"),
        (np.array([0, 1, 2]), np.ones((2, 3)), LABELS, 5, "3 items"),
        (np.array([0, 1]), np.ones((2, 3)), ["a", "b"], 5, "2 labels"),
        (np.array([0, 3]), np.ones((2, 3)), LABELS, 5, r"\[0, 3\)"),
        (np.array([0, -1]), np.ones((2, 3)), LABELS, 5, r"\[0, 3\)"),
        (np.array([0.5, 1.0]), np.ones((2, 3)), LABELS, 5, "integer"),
        (np.array([0, 1]), np.array([[np.nan, 0, 0], [0, 1, 0]]), LABELS, 5, "NaN"),
        (np.array([0, 1]), np.ones((2, 3)), ["a", "a", "b"], 5, "unique"),
        (np.array([0, 1]), np.ones((2, 3)), LABELS, 0, "top_k"),
        (np.array([], dtype=int), np.ones((0, 3)), LABELS, 5, "zero examples"),
    ],
)
def test_invalid_inputs_raise_value_error(y, probs, labels, top_k, match) -> None:
    with pytest.raises(ValueError, match=match):
        classification_metrics(y, probs, labels, top_k=top_k)


def test_float_integer_labels_are_accepted() -> None:
    m = classification_metrics(Y_TRUE.astype(float), PROBS, LABELS, top_k=2)
    assert m["accuracy"] == pytest.approx(4 / 6)


def test_format_classification_report_is_aligned_and_complete() -> None:
    m = classification_metrics(Y_TRUE, PROBS, ["cat", "dog", "a-very-long-label"], top_k=2)
    text = format_classification_report(m)
    lines = text.splitlines()
    assert "accuracy: 0.6667" in lines
    assert "top-2 accuracy: 0.8333" in lines
    for needle in ("cat", "dog", "a-very-long-label", "macro avg", "weighted avg", "precision", "support"):
        assert needle in text
    dog_row = next(l for l in lines if l.startswith("dog"))
    assert dog_row.split() == ["dog", "0.6667", "1.0000", "0.8000", "2"]
    macro_row = next(l for l in lines if l.startswith("macro avg"))
    assert macro_row.split()[2:] == ["0.4444", "0.5556", f"{(2 / 3 + 0.8) / 3:.4f}", "6"]
    # Table rows (header, classes, averages) all have the same width.
    table = [l for l in lines[lines.index("") + 1 :] if not set(l) <= {"-"}]
    assert len(table) == 1 + 3 + 2
    assert len({len(l) for l in table}) == 1


def test_bootstrap_ci_mean_interval() -> None:
    rng = np.random.default_rng(123)
    data = (rng.random(1000) < 0.5).astype(float)
    low, high = bootstrap_ci(lambda idx: float(data[idx].mean()), len(data), n_boot=500, seed=0)
    assert low < data.mean() < high
    # Standard error of a proportion at p~0.5, n=1000 is ~0.0158; the 95% interval is ~0.062 wide.
    assert 0.045 < high - low < 0.08
    assert bootstrap_ci(lambda idx: float(data[idx].mean()), len(data), n_boot=500, seed=0) == (low, high)
    assert bootstrap_ci(lambda idx: float(data[idx].mean()), len(data), n_boot=500, seed=1) != (low, high)
    low90, high90 = bootstrap_ci(lambda idx: float(data[idx].mean()), len(data), n_boot=500, seed=0, alpha=0.1)
    assert low <= low90 and high90 <= high and (high90 - low90) < (high - low)


def test_bootstrap_ci_is_the_percentile_interval_of_the_statistics() -> None:
    data = np.random.default_rng(7).normal(size=60)
    stats: list[float] = []

    def fn(idx: np.ndarray) -> float:
        stats.append(float(np.median(data[idx])))
        return stats[-1]

    low, high = bootstrap_ci(fn, len(data), n_boot=300, seed=3, alpha=0.2)
    assert len(stats) == 300
    assert (low, high) == pytest.approx(tuple(np.percentile(stats, [10.0, 90.0])))


def test_bootstrap_ci_indices_and_degenerate_cases() -> None:
    seen: list[np.ndarray] = []

    def fn(idx: np.ndarray) -> float:
        seen.append(idx)
        return 3.0

    assert bootstrap_ci(fn, 17, n_boot=20) == (3.0, 3.0)
    assert len(seen) == 20
    assert all(i.shape == (17,) and i.min() >= 0 and i.max() < 17 for i in seen)
    assert bootstrap_ci(lambda idx: float("nan"), 5, n_boot=10) == pytest.approx((math.nan, math.nan), nan_ok=True)
    for kwargs in ({"n_items": 0}, {"n_items": 5, "n_boot": 0}, {"n_items": 5, "alpha": 1.0}):
        with pytest.raises(ValueError):
            bootstrap_ci(lambda idx: 0.0, **kwargs)


def test_metrics_module_does_not_import_tensorflow() -> None:
    code = (
        "import sys, sensorium.pipelines.common.metrics; "
        "bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]; "
        "assert not bad, bad"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
