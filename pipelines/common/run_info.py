"""Rewrite what a trained run's model records (its metadata layer's info), weights unchanged.

Used by the modules that add or replace a record in a trained run (one trained before the record
existed, or a user's own): speech's `language_model` and `tail_silence`, sentiment's `long_text` and
`calibration`; `sensorium export` then carries it into the run's exports.
"""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def rewrite_run_info(model: str | Path, task: str, what: str,
                     update: Callable[[dict[str, Any], Any], dict[str, Any]]) -> Path:
    """Load the `task` run `model`'s model.keras, replace its metadata info by `update(info, artifact)`,
    and save it atomically; returns the model's path. `what` names the record in error messages."""
    from sensorium.models.blocks.metadata import TaskMetadata
    from sensorium.pipelines.common.artifacts import inspect_artifact, load_keras, require_task
    from sensorium.runtime.atomic import atomic_path
    from sensorium.runtime.errors import ModelError

    artifact = require_task(inspect_artifact(model), task)
    if artifact.run is None:
        raise ModelError(f"{model}: recording {what} needs a run directory (its model is rewritten)")
    keras_model = load_keras(artifact.run.model_path)
    layer = next((x for x in keras_model.layers if isinstance(x, TaskMetadata)), None)
    if layer is None:
        raise ModelError(f"{model}: its model has no Sensorium metadata layer")
    layer.info = update(dict(layer.info), artifact)
    with atomic_path(artifact.run.model_path) as tmp:
        keras_model.save(tmp)
    return artifact.run.model_path


def record_value(model: str | Path, task: str, key: str, value: Any,
                 compute: Callable[[dict[str, Any], Any], Any]) -> Any:
    """Write `key` into the `task` run `model`'s metadata info (`rewrite_run_info`): `value`, or when it is
    None `compute(info, artifact)` (from the run's own data); logs and returns the value written."""
    found: dict[str, Any] = {}

    def update(info: dict[str, Any], artifact: Any) -> dict[str, Any]:
        found["value"] = value if value is not None else compute(info, artifact)
        return {**info, key: found["value"]}

    path = rewrite_run_info(model, task, key, update)
    shown = found["value"]
    if isinstance(shown, dict):  # a long table inside (a sentiment expert's domain words) is shown by its size
        shown = {k: f"<{len(v):,} entries>" if isinstance(v, dict | list) and len(v) > 20 else v
                 for k, v in shown.items()}
    log.info("recorded %s %s in %s; export the run again to carry it into its .tflite files", key, shown, path)
    return found["value"]


def value_option(flag: str, kind: type, help_text: str) -> Callable[[argparse.ArgumentParser], None]:
    """`options` for `recorder_main`: one optional value to record instead of computing it."""
    def options(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(flag, type=kind, default=None, help=help_text)

    return options


def recorder_main(argv: list[str] | None, *, module: str, doc: str | None, task: str,
                  options: Callable[[argparse.ArgumentParser], None],
                  record: Callable[[argparse.Namespace], str]) -> int:
    """The command line of a recording module, `python -m MODULE --model RUN [options]`: prints the line
    `record(args)` returns and exits 0, or prints one error line and exits 2 (a usage error) or 1."""
    from sensorium.runtime.errors import SensoriumError, UsageError

    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help=f"a {task} run directory")
    options(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        line = record(args)
    except SensoriumError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, UsageError) else 1
    print(line)
    return 0
