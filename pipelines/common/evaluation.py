"""What every task's `evaluate` shares: which model, which data (the run's own, @test by default),
where results go, and the classification outputs (metrics.json, confusion matrix, skipped items)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sensorium.pipelines.common.artifacts import Artifact, inspect_artifact, require_task, run_config
from sensorium.pipelines.common.rundir import RunDir
from sensorium.runtime.errors import UsageError


@dataclass
class EvaluationSetup:
    artifact: Artifact
    data: str  # the data spec to evaluate on
    data_config: Any  # the run's data config (or the task's defaults outside a run)
    seed: int  # the run's seed: the same seeded splits as in training
    dest: Path | None  # where results go: `out`, else the run directory, else nowhere


def evaluation_setup(model_path: str | Path, task: str, config_cls: type, default_data_config: Callable[[], Any],
                     data: str | None, out: str | Path | None, *, require_complete: bool = True) -> EvaluationSetup:
    """Identify the model (of `task`), the data spec (default: the run's) and the destination."""
    artifact = require_task(inspect_artifact(model_path, require_complete=require_complete), task)
    cfg = run_config(artifact, config_cls)
    data = data or (cfg.data.spec if cfg is not None else None)
    if not data:
        raise UsageError("--data is required for a model outside a run directory")
    dest = Path(out) if out else (artifact.run.path if artifact.run is not None else None)
    if dest is not None:
        dest.mkdir(parents=True, exist_ok=True)
    return EvaluationSetup(artifact, data, cfg.data if cfg is not None else default_data_config(),
                           cfg.seed if cfg is not None else 42, dest)


def write_classification_evaluation(dest: Path, result: dict[str, Any], labels: list[str], *, title: str,
                                    failures: list[tuple[str, str]]) -> None:
    """metrics.json, plots/confusion_matrix.png and eval_skipped.tsv (when items were skipped) in `dest`."""
    from sensorium.pipelines.common.reports import plot_confusion_matrix

    target = RunDir(dest)
    target.write_json("metrics.json", result)
    plot_confusion_matrix(result["metrics"]["confusion_matrix"], labels, target.sub("plots") / "confusion_matrix.png",
                          title=title)
    if failures:
        target.write_text("eval_skipped.tsv", "".join(f"{i}\t{e}\n" for i, e in failures))
