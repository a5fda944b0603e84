"""What a tuning search shows and writes: the live table of trials (stderr), `trials.csv`, `results.md`
and `plots/objective.png` in TUNE_DIR."""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sensorium.runtime.atomic import atomic_write_text


@dataclass
class TrialRow:
    """One trial as the reports show it."""

    trial_id: str
    status: str  # RUNNING | COMPLETED | FAILED | INVALID | STOPPED (by the budget)
    values: dict[str, Any]  # searched values, as config values
    objective: float | None = None
    epochs: int | None = None  # epochs trained (Hyperband: its budget for this trial)
    minutes: float | None = None
    message: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return "" if value is None else str(value)


def best_row(rows: list[TrialRow], direction: str) -> TrialRow | None:
    """The finished trial with the best objective; among equals, the one that trained fewer epochs, then
    in less time (the cheaper configuration), then the earlier one."""
    done = [r for r in rows if r.status == "COMPLETED" and r.objective is not None and not math.isnan(r.objective)]
    if not done:
        return None
    sign = -1.0 if direction == "max" else 1.0
    return min(done, key=lambda r: (sign * r.objective, r.epochs or 0, r.minutes or 0.0))  # type: ignore[operator]


def text_table(rows: list[TrialRow], names: list[str], objective: str, direction: str) -> str:
    """A fixed-width table of the trials (the live view), best marked with `*`."""
    best = best_row(rows, direction)
    header = ["trial", "status", objective, "epochs", "min"] + [n.split(".")[-1] for n in names]
    body = [[("*" if r is best else " ") + r.trial_id, r.status.lower(), _fmt(r.objective), _fmt(r.epochs),
             _fmt(None if r.minutes is None else round(r.minutes, 1))] + [_fmt(r.values.get(n)) for n in names]
            for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip() for line in [header, *body]]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def write_trials_csv(path: Path, rows: list[TrialRow], names: list[str], objective: str) -> Path:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["trial", "status", objective, "epochs", "minutes", *names, "message"])
    for r in rows:
        writer.writerow([r.trial_id, r.status, "" if r.objective is None else r.objective, _fmt(r.epochs),
                         "" if r.minutes is None else f"{r.minutes:.2f}", *[_fmt(r.values.get(n)) for n in names],
                         r.message])
    return atomic_write_text(path, buf.getvalue())


def results_markdown(rows: list[TrialRow], names: list[str], *, task: str, objective: str, direction: str,
                     header: dict[str, Any]) -> str:
    """`results.md`: the search's settings, the best trial and every trial, best first."""
    from sensorium.pipelines.batch.task import markdown_table

    best = best_row(rows, direction)
    lines = [f"# Hyperparameter search: {task}", ""]
    lines += [f"- **{k}:** {_fmt(v)}" for k, v in header.items()]
    lines += [f"- **objective:** {objective} ({direction})", ""]
    if best is not None:
        lines += [f"## Best: trial {best.trial_id}, {objective} {best.objective:.4f}", ""]
        lines += [f"- `{n}` = {_fmt(best.values.get(n))}" for n in names]
        lines += ["", "Train it again, and evaluate it on the test split, with "
                  "`sensorium train " + task + " --config best_config.json --out RUN_DIR`.", ""]
    else:
        lines += ["## No trial has finished yet", ""]
    done = sorted((r for r in rows if r.objective is not None), key=lambda r: r.objective,  # type: ignore[arg-type, return-value]
                  reverse=direction == "max")
    order = done + [r for r in rows if r.objective is None]
    lines += ["## Trials", ""]
    lines += markdown_table(["trial", "status", objective, "epochs", "minutes", *names],
                            [[r.trial_id, r.status.lower(), _fmt(r.objective), _fmt(r.epochs),
                              _fmt(None if r.minutes is None else round(r.minutes, 2)),
                              *[_fmt(r.values.get(n)) for n in names]] for r in order])
    failed = [r for r in rows if r.message]
    if failed:
        lines += ["", "## Failed trials", ""] + [f"- {r.trial_id}: {r.message}" for r in failed]
    return "\n".join(lines) + "\n"


def plot_objective(rows: list[TrialRow], path: Path, *, objective: str, direction: str) -> Path | None:
    """The objective of each finished trial in trial order, the best so far as a step line (Hyperband's
    trials sized by their epochs)."""
    from sensorium.pipelines.common.reports import new_figure, save_png

    points = [(i, r) for i, r in enumerate(rows) if r.objective is not None and not math.isnan(r.objective)]
    if not points:
        return None
    fig = new_figure(max(5.0, min(14.0, 0.35 * len(rows) + 3)), 3.6)
    ax = fig.add_subplot(1, 1, 1)
    xs = [i + 1 for i, _ in points]
    ys = [r.objective for _, r in points]
    epochs = [r.epochs or 1 for _, r in points]
    top = max(epochs)
    sizes = [20 + 60 * e / top for e in epochs]
    ax.scatter(xs, ys, s=sizes, color="#1f77b4", zorder=3, label="trial (size: epochs)")
    best, best_xs, best_ys = None, [], []
    for x, y in zip(xs, ys):
        if best is None or (y > best if direction == "max" else y < best):
            best = y
        best_xs.append(x)
        best_ys.append(best)
    ax.step(best_xs, best_ys, where="post", color="#d62728", label="best so far")
    failed = [i + 1 for i, r in enumerate(rows) if r.status in ("FAILED", "INVALID")]
    if failed:
        ax.scatter(failed, [min(ys)] * len(failed), marker="x", color="#7f7f7f", label="failed")
    ax.set_xlabel("trial")
    ax.set_ylabel(objective)
    ax.set_title(f"{objective} per trial ({'higher' if direction == 'max' else 'lower'} is better)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return save_png(fig, path)
