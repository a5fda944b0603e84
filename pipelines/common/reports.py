"""Evaluation reports: confusion-matrix and training-curve PNGs, Markdown model cards (no TensorFlow).

Plots use matplotlib's object API (``Figure`` + Agg canvas), so no global pyplot state is touched
and no display is needed. Every file is written atomically.
"""

from __future__ import annotations

import io
import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sensorium.runtime.atomic import atomic_write_bytes, atomic_write_text

logger = logging.getLogger(__name__)

__all__ = ["plot_bars", "plot_confusion_matrix", "plot_training_curves", "render_model_card", "write_model_card"]

_MAX_ANNOTATED_CLASSES = 30
_MAX_TICK_LABELS = 100


def _new_figure(width: float, height: float) -> Any:
    """A matplotlib Figure with an Agg canvas attached (no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save_png(fig: Any, path: Path) -> Path:
    """Render ``fig`` to PNG bytes and write them atomically to ``path``."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return atomic_write_bytes(Path(path), buf.getvalue())


new_figure, save_png = _new_figure, _save_png  # for the other report writers (tuning, batch jobs)


def plot_confusion_matrix(
    cm: list[list[int]] | np.ndarray,
    labels: list[str],
    path: Path,
    title: str = "Confusion matrix",
    normalize: bool = True,
) -> Path:
    """Save a confusion matrix (rows = true, cols = predicted) as a PNG at ``path``.

    With ``normalize`` the colours are row-normalised (recall per cell); cells are annotated with
    raw counts unless there are more than 30 classes. Returns ``path``.
    """
    m = np.asarray(cm)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"cm must be a square 2-D matrix, got shape {m.shape}")
    n = m.shape[0]
    if n == 0:
        raise ValueError("cm is empty")
    if len(labels) != n:
        raise ValueError(f"got {len(labels)} labels for a {n}x{n} confusion matrix")
    if m.dtype.kind not in "iuf" or not np.all(np.isfinite(m)):
        raise ValueError("cm must hold finite numbers")

    counts = m.astype(np.float64)
    if normalize:
        row_sums = counts.sum(axis=1, keepdims=True)
        colours = np.zeros_like(counts)
        np.divide(counts, row_sums, out=colours, where=row_sums != 0)
        vmax = 1.0
    else:
        colours = counts
        vmax = max(float(counts.max()), 1.0)

    side = min(max(6.0, 0.45 * n + 3.0), 40.0)
    fig = _new_figure(side, side * 0.9)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(colours, interpolation="nearest", cmap="Blues", vmin=0.0, vmax=vmax)
    cbar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    cbar.set_label("fraction of true class" if normalize else "count")

    ax.set_title(title)
    ax.set_xlabel("Predicted label")
    ax.set_ylabel("True label")
    if n <= _MAX_TICK_LABELS:
        font = 10 if n <= 15 else max(4, int(10 - (n - 15) / 10))
        ticks = np.arange(n)
        ax.set_xticks(ticks)
        ax.set_yticks(ticks)
        ax.set_xticklabels([str(l) for l in labels], rotation=45, ha="right", rotation_mode="anchor", fontsize=font)
        ax.set_yticklabels([str(l) for l in labels], fontsize=font)
    else:
        logger.info("plot_confusion_matrix: %d classes, tick labels omitted", n)

    if n <= _MAX_ANNOTATED_CLASSES:
        is_int = m.dtype.kind in "iu" or bool(np.all(counts == np.round(counts)))
        font = 10 if n <= 10 else 7
        for i in range(n):
            for j in range(n):
                text = f"{int(counts[i, j])}" if is_int else f"{counts[i, j]:.2g}"
                dark = colours[i, j] > 0.5 * vmax
                ax.text(j, i, text, ha="center", va="center", fontsize=font, color="white" if dark else "black")
    return _save_png(fig, Path(path))


def plot_bars(values: dict[str, float], path: Path, *, title: str, ylabel: str, counts: dict[str, int] | None = None
              ) -> Path:
    """A bar chart of one value per group (class, length bucket); `counts` annotates each bar."""
    names = list(values)
    fig = _new_figure(max(5.0, 0.35 * len(names) + 2.5), 3.8)
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(names))
    ax.bar(x, [values[n] for n in names], color="#4C72B0")
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=45 if len(names) > 6 else 0, ha="right" if len(names) > 6 else "center",
                       fontsize=8 if len(names) > 20 else 10)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    if counts:
        for xi, n in zip(x, names):
            ax.annotate(f"n={counts.get(n, 0)}", (xi, values[n]), ha="center", va="bottom", fontsize=7)
    return _save_png(fig, path)


def _metric_families(history: Mapping[str, Sequence[float]]) -> list[list[str]]:
    """Group history keys: each metric with its ``val_`` twin; unmatched ``val_`` keys stand alone."""
    families: list[list[str]] = []
    used: set[str] = set()
    for key in history:
        if key in used:
            continue
        if key.startswith("val_") and key[4:] in history:
            continue  # plotted with its training twin
        family = [key]
        used.add(key)
        twin = f"val_{key}"
        if not key.startswith("val_") and twin in history:
            family.append(twin)
            used.add(twin)
        families.append(family)
    return families


def plot_training_curves(history: dict[str, list[float]], path: Path) -> Path:
    """Save training curves as a PNG: one subplot per metric (with its ``val_`` twin), x = epoch from 1."""
    from matplotlib.ticker import MaxNLocator

    if not history:
        raise ValueError("history is empty")
    series: dict[str, np.ndarray] = {}
    for key, values in history.items():
        arr = np.asarray([np.nan if v is None else v for v in values], dtype=np.float64).reshape(-1)
        series[str(key)] = arr
    if all(arr.size == 0 for arr in series.values()):
        raise ValueError("history holds no values")
    families = [f for f in _metric_families(series) if any(series[k].size for k in f)]

    ncols = min(3, len(families))
    nrows = math.ceil(len(families) / ncols)
    fig = _new_figure(5.0 * ncols, 3.6 * nrows)
    for idx, family in enumerate(families):
        ax = fig.add_subplot(nrows, ncols, idx + 1)
        for key in family:
            y = series[key]
            if y.size == 0:
                continue
            x = np.arange(1, y.size + 1)
            ax.plot(x, y, marker="o" if y.size <= 30 else None, markersize=3, label=key)
        name = family[0][4:] if family[0].startswith("val_") else family[0]
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    return _save_png(fig, Path(path))


def _cell(value: Any, table: bool = True) -> str:
    """Format one Markdown table cell or bullet: compact numbers, one line (pipes escaped in tables)."""
    if isinstance(value, bool) or value is None:
        text = str(value)
    elif isinstance(value, (float, np.floating)):
        text = f"{float(value):.6g}"
    elif isinstance(value, (int, np.integer, str)):
        text = str(value)
    else:
        try:
            text = json.dumps(value, default=str)
        except (TypeError, ValueError):
            text = str(value)
    if table:
        text = text.replace("|", "\\|")
    return text.replace("\r\n", "<br>").replace("\n", "<br>")


def render_model_card(*, title: str, task: str, sections: Mapping[str, str | dict | list]) -> str:
    """Render a Markdown model card: ``# title``, the task, then one ``## heading`` per section.

    A str section is a paragraph, a dict a two-column table, a list bullets.
    """
    out: list[str] = [f"# {title}", "", f"**Task:** {task}", ""]
    for heading, body in sections.items():
        out.append(f"## {heading}")
        out.append("")
        if isinstance(body, Mapping):
            if not body:
                out.append("_None._")
            else:
                out.append("| Field | Value |")
                out.append("| --- | --- |")
                out.extend(f"| {_cell(k)} | {_cell(v)} |" for k, v in body.items())
        elif isinstance(body, (list, tuple)):
            if not body:
                out.append("_None._")
            else:
                out.extend(f"- {_cell(item, table=False)}" for item in body)
        else:
            out.append(str(body).strip())
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def write_model_card(path: Path, *, title: str, task: str, sections: dict[str, str | dict | list]) -> Path:
    """Write ``render_model_card(...)`` atomically to ``path`` (Markdown); returns ``path``."""
    return atomic_write_text(Path(path), render_model_card(title=title, task=task, sections=sections))
