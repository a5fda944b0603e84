"""Positive-vs-negative metrics of sentiment evaluation (`polarity_accuracy`)."""
from __future__ import annotations

import numpy as np

from sensorium.pipelines.sentiment.evaluate import polarity_accuracy

LABELS = ["negative", "neutral", "positive"]


def test_binary_macro_f1_on_the_non_neutral_items_choosing_between_positive_and_negative():
    y = np.array([0, 0, 0, 2, 2, 1])  # 3 negative, 2 positive, 1 neutral (left out)
    probs = np.array([[0.6, 0.3, 0.1],   # negative: right
                      [0.2, 0.7, 0.1],   # negative, neutral wins the argmax but negative beats positive: right
                      [0.1, 0.1, 0.8],   # negative: wrong (positive)
                      [0.1, 0.6, 0.3],   # positive: right (0.3 >= 0.1)
                      [0.5, 0.1, 0.4],   # positive: wrong
                      [0.9, 0.05, 0.05]])  # neutral: not counted
    m = polarity_accuracy(y, probs, LABELS)
    assert m["binary_count"] == 5 and m["binary_accuracy"] == 3 / 5
    # positive: TP 1, FP 1, FN 1 -> F1 0.5; negative: TP 2, FP 1, FN 1 -> F1 2/3
    assert abs(m["binary_macro_f1"] - (0.5 + 2 / 3) / 2) < 1e-12


def test_a_set_without_neutral_items_gets_a_full_binary_score_and_no_labels_none():
    y = np.array([0, 2, 2, 0])
    probs = np.array([[0.5, 0.4, 0.1], [0.1, 0.5, 0.4], [0.2, 0.1, 0.7], [0.3, 0.6, 0.1]])
    m = polarity_accuracy(y, probs, LABELS)
    assert m["binary_accuracy"] == 1.0 and m["binary_macro_f1"] == 1.0
    assert polarity_accuracy(y, probs, ["a", "b", "c"]) is None
    assert polarity_accuracy(np.array([1, 1]), probs[:2], LABELS) is None  # only neutral items
