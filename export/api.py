"""`sensorium export`: write SavedModel / TFLite variants of a trained model, prove parity, report.

Every file is written under a temporary name, checked by running it, and only then renamed into place;
a variant whose agreement with the Keras model is below its threshold is not kept.
"""
from __future__ import annotations

import json
import logging
import shutil
from importlib import metadata
from pathlib import Path
from typing import Any

from sensorium.export import associated_files
from sensorium.export.parity import THRESHOLDS, parity_row
from sensorium.export.registry import EXPORTERS
from sensorium.pipelines.common.artifacts import inspect_artifact
from sensorium.pipelines.common.atomic import atomic_path, atomic_write_json
from sensorium.pipelines.common.errors import ModelError, SensoriumError, UsageError
from sensorium.pipelines.common.registry import Registry

log = logging.getLogger(__name__)

SOURCES: Registry[str] = Registry("exportable task")
SOURCES.register("image", "sensorium.export.image:ImageExportSource")


class ParityError(SensoriumError):
    """An exported variant does not compute what the Keras model computes."""


def _version() -> str:
    try:
        return metadata.version("sensorium")
    except metadata.PackageNotFoundError:
        return "unknown"


def _load_source(model_path: str | Path):
    import importlib

    artifact = inspect_artifact(model_path)
    if artifact.kind not in ("run", "keras"):
        raise ModelError(f"{model_path}: export takes a run directory or a .keras file, not a {artifact.kind}")
    if artifact.task is None:
        raise ModelError(f"{model_path}: cannot tell which task this model serves (no Sensorium metadata)")
    module, _, name = SOURCES.get(artifact.task).partition(":")
    return getattr(importlib.import_module(module), name).load(artifact)


def default_destination(source, fmt: str, variant: str) -> Path:
    base = source.artifact.run.path / "exports" if source.artifact.run is not None else source.artifact.path.parent / "exports"
    if fmt in ("saved_model", "hub-module"):
        return base / fmt.replace("-", "_")
    from sensorium.export.tflite import FILE_SUFFIX

    return base / f"model-{FILE_SUFFIX[variant]}.tflite"


def export(model_path: str | Path, fmt: str, *, quantize: str = "none", calibration_data: str | None = None,
           out: str | Path | None = None, overwrite: bool = False, parity_data: str | None = None,
           latency_runs: int = 200) -> list[dict[str, Any]]:
    """Export one format (and for TFLite one or all quantisation modes); returns the parity rows."""
    exporter = EXPORTERS.get(fmt)
    variants = list(exporter.quantizations) if quantize == "all" else [quantize]
    for v in variants:
        if v not in exporter.quantizations:
            raise UsageError(f"--quantize {v} is not available for {fmt}; use: {', '.join(exporter.quantizations)}")
    if out is not None and len(variants) > 1:
        raise UsageError("--out names one file; with --quantize all, leave it out (files go to RUN_DIR/exports/)")
    source = _load_source(model_path)
    dests = {v: Path(out) if out else default_destination(source, fmt, v) for v in variants}
    for v, dest in dests.items():
        if dest.exists() and not overwrite:
            raise UsageError(f"{dest} exists; pass --overwrite to replace it")
    x_eval, y_eval = source.load_images(parity_data, "test")
    keras_out = source.keras_fn()
    from sensorium.export.parity import run_batched

    keras_outputs = run_batched(keras_out, x_eval)
    calibration = None
    if "int8" in variants:
        from sensorium.export.tflite import MIN_CALIBRATION, calibration_batches

        x_cal, _ = source.load_images(calibration_data, "train")
        if len(x_cal) < MIN_CALIBRATION:
            raise UsageError(f"int8 calibration needs at least {MIN_CALIBRATION} samples; "
                             f"{calibration_data or 'the training data'} has {len(x_cal)}")
        calibration = calibration_batches(x_cal, max(MIN_CALIBRATION, min(500, len(x_cal))))
    rows = []
    for v in variants:
        try:
            row = _export_one(source, fmt, v, dests[v], calibration, x_eval, y_eval, keras_outputs, latency_runs)
        except _Rejected as rejected:  # the file was removed; the row still goes into the report
            row = rejected.row
            log.error("%s: agreement %.4f is below %.2f; file not kept", v, row["agreement"], row["agreement_threshold"])
        rows.append(row)
    _write_parity(dests, rows)
    failed = [r for r in rows if not r["passed"]]
    if failed:
        names = ", ".join(f"{r['variant']} ({r['agreement']:.4f} < {r['agreement_threshold']})" for r in failed)
        raise ParityError(f"parity check failed, file not kept: {names}")
    return rows


def _export_one(source, fmt: str, variant: str, dest: Path, calibration, x_eval, y_eval, keras_outputs,
                latency_runs: int) -> dict[str, Any]:
    version = _version()
    if fmt == "hub-module":
        return _export_hub_module(source, dest, x_eval, latency_runs, version)
    if fmt == "saved_model":
        import tensorflow as tf

        with atomic_path(dest) as tmp:
            source.write_saved_model(tmp, version)
            fn = tf.saved_model.load(str(tmp)).signatures["serving_default"]
            run = lambda x: fn(pixels=tf.constant(x))["probabilities"].numpy()
            size = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file())
            row = parity_row(source.task, "saved_model", run, x_eval, y_eval, keras_outputs, size_bytes=size,
                             path=str(dest), latency_runs=latency_runs)
            if not row["passed"]:
                raise _Rejected(row)
        return row
    from sensorium.export.edge import EdgeModel
    from sensorium.export.tflite import convert

    flat = convert(source.model, input_shape=source.input_shape, quantize=variant, calibration=calibration)
    files = {"sensorium.json": json.dumps(source.manifest("tflite", variant, version), indent=2).encode()}
    if source.labels:
        files["labels.txt"] = "".join(f"{label}\n" for label in source.labels).encode()
    packed = associated_files.pack(flat, files)
    with atomic_path(dest) as tmp:
        tmp.write_bytes(packed)
        edge = EdgeModel(tmp)
        row = parity_row(source.task, variant, edge, x_eval, y_eval, keras_outputs, size_bytes=len(packed),
                         path=str(dest), latency_runs=latency_runs)
        row["runtime"] = edge.runtime
        if not row["passed"]:
            raise _Rejected(row)
    return row


def _export_hub_module(source, dest: Path, x_eval, latency_runs: int, version: str) -> dict[str, Any]:
    """Write the feature extractor as a hub module, reload it with tensorflow_hub, compare features."""
    import tensorflow as tf
    import tensorflow_hub as hub

    from sensorium.export.hub_module import feature_extractor, write_hub_module
    from sensorium.export.parity import run_batched

    extractor = feature_extractor(source.model)
    want = run_batched(lambda b: extractor(b, training=False).numpy(), x_eval)
    with atomic_path(dest) as tmp:
        write_hub_module(source.model, tmp, image_size=source.image_size,
                         meta={"task": source.task, "sensorium_version": version})
        module = hub.load(str(tmp))
        run = lambda b: module(tf.constant(b, tf.float32) / 255.0, training=False).numpy()
        size = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file())
        row = parity_row("features", "hub-module", run, x_eval, None, want, size_bytes=size, path=str(dest),
                         latency_runs=latency_runs)
        if not row["passed"]:
            raise _Rejected(row)
    return row


class _Rejected(Exception):
    def __init__(self, row: dict[str, Any]) -> None:
        super().__init__(row["variant"])
        self.row = row


def _write_parity(dests: dict[str, Path], rows: list[dict[str, Any]]) -> None:
    """Merge rows into exports/parity.json next to the files (one entry per variant)."""
    path = next(iter(dests.values())).parent / "parity.json"
    try:
        existing = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except ValueError:
        existing = {}
    variants = existing.get("variants", {})
    for row in rows:
        variants[row["variant"]] = row
    atomic_write_json(path, {"thresholds": THRESHOLDS, "variants": variants})
