"""`sensorium export`: write SavedModel / TFLite variants of a trained model, prove parity, report.

Every file is written under a temporary name, checked by running it, and only then renamed into place;
a variant whose agreement with the Keras model is below its threshold is not kept.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from sensorium.export.parity import THRESHOLDS, parity_row
from sensorium.export.registry import EXPORTERS
from sensorium.pipelines.common.artifacts import inspect_artifact
from sensorium.runtime import tflite as associated_files
from sensorium.runtime.atomic import atomic_path, atomic_write_json
from sensorium.runtime.errors import ModelError, SensoriumError, UsageError
from sensorium.runtime.tasks import TASKS

log = logging.getLogger(__name__)

class ParityError(SensoriumError):
    """An exported variant does not compute what the Keras model computes."""


def _version() -> str:
    try:
        return metadata.version("sensorium")
    except metadata.PackageNotFoundError:
        return "unknown"


def _load_source(model_path: str | Path):
    artifact = inspect_artifact(model_path)
    if artifact.kind not in ("run", "keras"):
        raise ModelError(f"{model_path}: export takes a run directory or a .keras file, not a {artifact.kind}")
    if artifact.task is None:
        raise ModelError(f"{model_path}: cannot tell which task this model serves (no Sensorium metadata)")
    source = TASKS.get(artifact.task).load("export").load(artifact)
    return source if hasattr(source, "evaluation_data") else ArraySourceFlow(source)


class ArraySourceFlow:
    """The export hooks for a source of fixed-shape array inputs (the image task's source, which
    provides `load_images`, `keras_fn`, `input_shape`, `labels`, `manifest`, `write_saved_model`).

    Every source `export()` drives offers these hooks: `formats`, `quantizations`, `unavailable`
    (variant -> why not), `evaluation_data(spec)`, `calibration_data(spec)`, `run_keras(data)`,
    `write_saved_model(out, version)`, `saved_model_runner(path)`, `to_tflite(variant, calibration)`,
    `tflite_files(variant, version)`, `tflite_runner(path)` and `parity(variant, run, data,
    keras_outputs, size_bytes=, path=, latency_runs=)`. Variable-length sources (speech) implement
    them themselves; this class gives fixed-shape ones the batched behaviour.
    """

    formats = ("saved_model", "hub-module", "tflite")
    unavailable: dict[str, str] = {}

    def __init__(self, source: Any) -> None:
        self.source = source

    def __getattr__(self, name: str) -> Any:  # task, artifact, model, labels, image_size, manifest, ...
        if name == "source":  # not set yet (e.g. while copying): no recursion
            raise AttributeError(name)
        return getattr(self.source, name)

    @property
    def quantizations(self) -> tuple[str, ...]:
        from sensorium.export.tflite import QUANTIZATIONS, WEIGHT_ONLY

        return (*QUANTIZATIONS, WEIGHT_ONLY)

    def evaluation_data(self, spec: str | None) -> tuple[Any, Any]:
        """(inputs, labels or None): `spec` or the run's data @test."""
        return self.source.load_images(spec, "test")

    def calibration_data(self, spec: str | None) -> list[Any]:
        """int8 calibration samples (1, ...) from `spec` or the run's data @train."""
        from sensorium.export.tflite import MIN_CALIBRATION, calibration_batches

        x_cal, _ = self.source.load_images(spec, "train")
        if len(x_cal) < MIN_CALIBRATION:
            raise UsageError(f"int8 calibration needs at least {MIN_CALIBRATION} samples; "
                             f"{spec or 'the training data'} has {len(x_cal)}")
        return calibration_batches(x_cal, max(MIN_CALIBRATION, min(500, len(x_cal))))

    def run_keras(self, data: tuple[Any, Any]) -> Any:
        from sensorium.export.parity import run_batched

        return run_batched(self.source.keras_fn(), data[0])

    def saved_model_runner(self, path: str | Path) -> Callable[[Any], Any]:
        import tensorflow as tf

        fn = tf.saved_model.load(str(path)).signatures["serving_default"]
        return lambda x: fn(pixels=tf.constant(x))["probabilities"].numpy()

    def to_tflite(self, variant: str, calibration: list[Any] | None) -> bytes:
        from sensorium.export import tflite

        return tflite.convert(self.source.model, input_shape=self.source.input_shape, quantize=variant,
                              calibration=calibration)

    def tflite_files(self, variant: str, version: str) -> dict[str, bytes]:
        files = {"sensorium.json": json.dumps(self.source.manifest("tflite", variant, version), indent=2).encode()}
        if self.source.labels:
            files["labels.txt"] = "".join(f"{label}\n" for label in self.source.labels).encode()
        return files

    def tflite_runner(self, path: str | Path) -> tuple[Callable[[Any], Any], str]:
        from sensorium.runtime.tflite import EdgeModel

        edge = EdgeModel(path)
        return edge, edge.runtime

    def parity(self, variant: str, run: Callable[[Any], Any], data: tuple[Any, Any], keras_outputs: Any, *,
               size_bytes: int, path: str, latency_runs: int) -> dict[str, Any]:
        x, y = data
        return parity_row(self.source.task, variant, run, x, y, keras_outputs, size_bytes=size_bytes, path=path,
                          latency_runs=latency_runs)


def default_destination(source, fmt: str, variant: str) -> Path:
    run = source.artifact.run
    base = run.path / "exports" if run is not None else source.artifact.path.parent / "exports"
    if fmt in ("saved_model", "hub-module"):
        return base / fmt.replace("-", "_")
    from sensorium.export.tflite import FILE_SUFFIX

    return base / f"model-{FILE_SUFFIX[variant]}.tflite"


def export(model_path: str | Path, fmt: str, *, quantize: str = "none", calibration_data: str | None = None,
           out: str | Path | None = None, overwrite: bool = False, parity_data: str | None = None,
           latency_runs: int = 200) -> list[dict[str, Any]]:
    """Export one format (and for TFLite one or all quantisation modes); returns the parity rows.

    `quantize="all"` means every mode the format and the model's task support (speech: none, float16,
    int8; images also int8-weights). Parity data defaults to the run's data @test, int8 (and
    int8-weights) calibration data to its @train.
    """
    exporter = EXPORTERS.get(fmt)
    variants = list(exporter.quantizations) if quantize == "all" else [quantize]
    for v in variants:
        if v not in exporter.quantizations:
            raise UsageError(f"--quantize {v} is not available for {fmt}; use: {', '.join(exporter.quantizations)}")
    if out is not None and len(variants) > 1:
        raise UsageError("--out names one file; with --quantize all, leave it out (files go to RUN_DIR/exports/)")
    source = _load_source(model_path)
    variants = _supported(source, fmt, variants, quantize == "all")
    dests = {v: Path(out) if out else default_destination(source, fmt, v) for v in variants}
    for dest in dests.values():
        if dest.exists() and not overwrite:
            raise UsageError(f"{dest} exists; pass --overwrite to replace it")
    data = source.evaluation_data(parity_data)
    keras_outputs = source.run_keras(data)
    calibration = source.calibration_data(calibration_data) if {"int8", "int8-weights"} & set(variants) else None
    rows = []
    for v in variants:
        try:
            row = _export_one(source, fmt, v, dests[v], calibration, data, keras_outputs, latency_runs)
        except _Rejected as rejected:  # the file was removed; the row still goes into the report
            row = rejected.row
            log.error("%s: %s; file not kept", v, _why_rejected(row))
        rows.append(row)
    _write_parity(dests, rows)
    failed = [r for r in rows if not r["passed"]]
    if failed:
        names = ", ".join(f"{r['variant']} ({_why_rejected(r)})" for r in failed)
        raise ParityError(f"parity check failed, file not kept: {names}")
    return rows


def _supported(source, fmt: str, variants: list[str], all_variants: bool) -> list[str]:
    """The variants of `fmt` this model's task can export; one-line UsageErrors for the others."""
    if fmt not in source.formats:
        raise UsageError(f"--format {fmt} is not available for {source.task} models; use: {', '.join(source.formats)}")
    if all_variants:
        return [v for v in variants if v in source.quantizations]
    for v in variants:
        if v in source.unavailable:
            raise UsageError(source.unavailable[v])
        if v not in source.quantizations:
            raise UsageError(f"--quantize {v} is not available for {source.task} models; "
                             f"use: {', '.join(source.quantizations)}")
    return variants


def _export_one(source, fmt: str, variant: str, dest: Path, calibration, data, keras_outputs,
                latency_runs: int) -> dict[str, Any]:
    version = _version()
    if fmt == "hub-module":
        return _export_hub_module(source, dest, data[0], latency_runs, version)
    if fmt == "saved_model":
        with atomic_path(dest) as tmp:
            source.write_saved_model(tmp, version)
            run = source.saved_model_runner(tmp)
            size = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file())
            row = source.parity("saved_model", run, data, keras_outputs, size_bytes=size, path=str(dest),
                                latency_runs=latency_runs)
            if not row["passed"]:
                raise _Rejected(row)
        return row
    flat = source.to_tflite(variant, calibration)
    packed = associated_files.pack(flat, source.tflite_files(variant, version))
    with atomic_path(dest) as tmp:
        tmp.write_bytes(packed)
        run, runtime = source.tflite_runner(tmp)
        row = source.parity(variant, run, data, keras_outputs, size_bytes=len(packed), path=str(dest),
                            latency_runs=latency_runs)
        row["runtime"] = runtime
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


def _why_rejected(row: dict[str, Any]) -> str:
    """Which parity criterion a row failed: agreement, or for a translator the chrF gap to Keras or the
    placeholders it kept."""
    if row["agreement"] < row["agreement_threshold"]:
        return f"agreement {row['agreement']:.4f} < {row['agreement_threshold']}"
    if "chrf_tolerance" in row and abs(row["chrf"] - row["keras_chrf"]) > row["chrf_tolerance"]:
        return (f"chrF {row['chrf']:.2f} against Keras's {row['keras_chrf']:.2f}, more than "
                f"{row['chrf_tolerance']} apart (agreement {row['agreement']:.4f})")
    if "placeholders_preserved" in row:
        return f"placeholders kept in {row['placeholders_preserved']:.1%} of the strings, fewer than Keras"
    return f"agreement {row['agreement']:.4f} against {row['agreement_threshold']}"


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
