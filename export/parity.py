"""Parity: proof that an exported file computes what the Keras model computes.

Each task registers a metric plug-in that scores outputs against labels and against the Keras
outputs; the report row has the file size, the task's metric computed by running the exported file
itself, agreement with Keras, the max absolute output difference and the median single-sample latency.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from sensorium.pipelines.common.registry import Registry

# Minimum agreement with the Keras model, per variant (export fails below it).
THRESHOLDS = {"saved_model": 0.99, "hub-module": 0.99, "none": 0.99, "float16": 0.99, "dynamic": 0.98, "int8": 0.98}


@dataclass(frozen=True)
class ParityMetric:
    """`score(outputs, labels, keras_outputs) -> {"metric": {...}, "agreement": float}`."""

    name: str
    score: Callable[[np.ndarray, np.ndarray | None, np.ndarray], dict[str, Any]]


PARITY_METRICS: Registry[ParityMetric] = Registry("parity metric")


def _classification(outputs: np.ndarray, labels: np.ndarray | None, keras_outputs: np.ndarray) -> dict[str, Any]:
    pred, ref = outputs.argmax(-1), keras_outputs.argmax(-1)
    metric = {"top1_agreement": float((pred == ref).mean())}
    if labels is not None:
        metric["accuracy"] = float((pred == labels).mean())
        metric["keras_accuracy"] = float((ref == labels).mean())
    return {"metric": metric, "agreement": metric["top1_agreement"]}


PARITY_METRICS.register("image", ParityMetric("accuracy and top-1 agreement", _classification))


def _features(outputs: np.ndarray, labels: np.ndarray | None, keras_outputs: np.ndarray) -> dict[str, Any]:
    """Feature vectors: the share of items whose vector matches Keras's within 1e-4 (relative 1e-3)."""
    close = np.all(np.isclose(outputs, keras_outputs, atol=1e-4, rtol=1e-3), axis=-1)
    return {"metric": {"feature_agreement": float(close.mean())}, "agreement": float(close.mean())}


PARITY_METRICS.register("features", ParityMetric("feature-vector agreement", _features))


def run_batched(fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray, batch_size: int = 32) -> np.ndarray:
    return np.concatenate([fn(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def median_latency_ms(fn: Callable[[np.ndarray], Any], sample: np.ndarray, runs: int = 200, warmup: int = 5) -> float:
    for _ in range(warmup):
        fn(sample)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn(sample)
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1000.0)


def parity_row(task: str, variant: str, fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray,
               labels: np.ndarray | None, keras_outputs: np.ndarray, *, size_bytes: int, path: str,
               latency_runs: int = 200) -> dict[str, Any]:
    """Score the exported `fn` on `x` against labels and Keras; check the variant's threshold."""
    outputs = run_batched(fn, x)
    scored = PARITY_METRICS.get(task).score(outputs, labels, keras_outputs)
    threshold = THRESHOLDS[variant]
    return {
        "variant": variant, "path": path, "size_bytes": int(size_bytes), "count": int(len(x)),
        **scored["metric"],
        "agreement": scored["agreement"], "agreement_threshold": threshold,
        "passed": bool(scored["agreement"] >= threshold),
        "max_abs_diff": float(np.max(np.abs(outputs.astype(np.float64) - keras_outputs))),
        "latency_ms_median": median_latency_ms(fn, x[:1], runs=latency_runs),
        "latency_calls": latency_runs,
    }


def format_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table of parity rows."""
    head = ["variant", "size", "accuracy", "keras acc", "agreement", "max |diff|", "latency ms", "ok"]
    lines = [head]
    for r in rows:
        lines.append([r["variant"], f"{r['size_bytes'] / 1024:.1f} KiB",
                      f"{r['accuracy']:.4f}" if "accuracy" in r else "-",
                      f"{r['keras_accuracy']:.4f}" if "keras_accuracy" in r else "-",
                      f"{r['agreement']:.4f} (>= {r['agreement_threshold']})", f"{r['max_abs_diff']:.2e}",
                      f"{r['latency_ms_median']:.3f}", "yes" if r["passed"] else "NO"])
    widths = [max(len(str(row[i])) for row in lines) for i in range(len(head))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in lines)
