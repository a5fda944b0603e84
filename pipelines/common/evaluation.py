"""What every task's `evaluate` shares: which model, which data (the run's own, @test by default),
where results go, and the classification outputs (metrics.json, confusion matrix, skipped items).

Where results go (`destination`): `out` when given; for a finished run `RUN/evaluations/<data>/`
(`RunDir.evaluation_dir`), so a later evaluation never overwrites what training recorded; for a run still
training, the run directory itself (training's own final evaluation, `training.finish_run`); for a
`.keras`, SavedModel or `.tflite` without `out`, nowhere (the metrics are returned and printed only); and
never inside the installed package (a bundled model's run directory), which is read-only in spirit and often
in fact.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sensorium.pipelines.common.artifacts import Artifact, inspect_artifact, require_task
from sensorium.pipelines.common.rundir import RunDir
from sensorium.runtime.errors import UsageError


@dataclass
class EvaluationSetup:
    artifact: Artifact
    data: str  # the data spec to evaluate on
    data_config: Any  # the run's data config (or the task's defaults outside a run)
    seed: int  # the run's seed: the same seeded splits as in training
    dest: Path | None  # where results go (see `destination`); None: nowhere


def destination(artifact: Artifact, data: str | None, out: str | Path | None = None) -> Path | None:
    """Where an evaluation of `artifact` on the data spec `data` (None: the run's own) writes its files
    (rules in the module's docstring)."""
    if out:
        dest = Path(out)
        if dest.exists() and not dest.is_dir():
            raise UsageError(f"--out {dest} exists and is not a folder")
        return dest
    if artifact.run is None or _is_bundled(artifact.run.path):
        return None
    if artifact.info.get("status") != "complete":
        return artifact.run.path  # training's own final evaluation: part of the run's records
    if not data and artifact.run.config_path.is_file():
        data = (artifact.run.read_config().get("data") or {}).get("spec")
    return artifact.run.evaluation_dir(data) if data else None


def _is_bundled(path: Path) -> bool:
    """Whether `path` lies inside the installed sensorium.assets (a bundled model)."""
    from sensorium.runtime.predictor import assets_dir

    try:
        return Path(path).resolve().is_relative_to(assets_dir().resolve())
    except Exception:  # no assets in this installation
        return False


def evaluation_setup(model_path: str | Path, task: str, config_cls: type, default_data_config: Callable[[], Any],
                     data: str | None, out: str | Path | None, *, require_complete: bool = True) -> EvaluationSetup:
    """Identify the model (of `task`), the data spec (default: the run's) and the destination."""
    artifact = require_task(inspect_artifact(model_path, require_complete=require_complete), task)
    run = artifact.run
    cfg = run.load_config(config_cls) if run is not None and run.config_path.is_file() else None
    data = data or (cfg.data.spec if cfg is not None else None)
    if not data:
        raise UsageError("--data is required for a model outside a run directory")
    return EvaluationSetup(artifact, data, cfg.data if cfg is not None else default_data_config(),
                           cfg.seed if cfg is not None else 42, destination(artifact, data, out))


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
