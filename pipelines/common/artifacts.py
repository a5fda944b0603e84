"""What a model path is (run directory, .keras file, SavedModel, .tflite) and which task it serves.

Inspection imports no TensorFlow: a `.keras` file is a zip whose config.json names our TaskMetadata
layer, a SavedModel carries `assets/sensorium.json`, a run directory its manifest.
"""
from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sensorium.pipelines.common.rundir import RunDir, read_json_object, read_text_lines
from sensorium.runtime.errors import ModelError

C = TypeVar("C")
P = TypeVar("P")
KIND_NAMES = {"run": "run directory", "keras": ".keras file", "saved_model": "SavedModel", "tflite": ".tflite file"}


@dataclass
class Artifact:
    kind: str  # "run" | "keras" | "saved_model" | "tflite"
    path: Path
    task: str | None
    labels: list[str] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    run: RunDir | None = None

    @property
    def keras_path(self) -> Path:
        return self.run.model_path if self.run is not None else self.path


# A .keras file is a zip that Keras (and inspection) read into memory: these caps are checked on the zip's
# directory before anything is decompressed or parsed.
KERAS_CONFIG_MAX_BYTES = 16 * 1024 * 1024  # config.json is the architecture only (weights live in
# model.weights.h5): a few hundred KB even for large networks, and it is parsed whole into Python objects
KERAS_MAX_MEMBERS = 10_000  # config.json, metadata.json, model.weights.h5 and some layers' assets
KERAS_MAX_EXPANSION = 100  # Keras stores members uncompressed (about 1:1); DEFLATE alone reaches ~1000:1
KERAS_EXPANSION_FLOOR = 64 * 1024 * 1024  # below this many unpacked bytes, any ratio is harmless


def _check_keras_zip(zf: zipfile.ZipFile, path: Path) -> None:
    """Refuse a .keras zip with absurd member count, unpacked size or config.json size (one line)."""
    members = zf.infolist()
    if len(members) > KERAS_MAX_MEMBERS:
        raise ModelError(f"{path}: the .keras zip has {len(members)} members (at most {KERAS_MAX_MEMBERS}); "
                         "not a model file")
    unpacked = sum(m.file_size for m in members)
    stored = sum(m.compress_size for m in members)
    if unpacked > KERAS_EXPANSION_FLOOR and unpacked > KERAS_MAX_EXPANSION * max(stored, 1):
        raise ModelError(f"{path}: the .keras zip unpacks {stored} stored bytes into {unpacked} (more than "
                         f"{KERAS_MAX_EXPANSION}x: a zip bomb?); refusing to read it")
    config = next((m for m in members if m.filename == "config.json"), None)
    if config is None:
        raise ModelError(f"{path}: not a valid .keras model file (no config.json)")
    if config.file_size > KERAS_CONFIG_MAX_BYTES:
        raise ModelError(f"{path}: its config.json is {config.file_size} bytes, over the {KERAS_CONFIG_MAX_BYTES}"
                         f"-byte cap on a .keras architecture (KERAS_CONFIG_MAX_BYTES); refusing to read it")


def check_keras_file(path: Path) -> None:
    """`_check_keras_zip` on the file at `path`; a ModelError for a file that is no zip."""
    try:
        with zipfile.ZipFile(path) as zf:
            _check_keras_zip(zf, path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelError(f"{path}: not a valid .keras model file ({exc})") from None


def _keras_metadata(path: Path) -> dict[str, Any] | None:
    """The TaskMetadata layer's config inside a .keras zip, without loading the model."""
    try:
        with zipfile.ZipFile(path) as zf:
            _check_keras_zip(zf, path)
            config = json.loads(zf.read("config.json"))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise ModelError(f"{path}: not a valid .keras model file ({exc})") from None
    found: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            registered = str(node.get("registered_name", ""))
            if node.get("class_name") == "TaskMetadata" or registered.endswith(">TaskMetadata"):
                found.append(node.get("config", {}))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config)
    return found[-1] if found else None


def inspect_artifact(path: str | Path, *, require_complete: bool = True) -> Artifact:
    """Identify a model artifact; fails with one line for anything unusable."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ModelError(f"{path}: no such model file or folder")
    if path.is_dir() and RunDir.is_run_dir(path):
        run = RunDir(path)
        manifest = run.require_complete() if require_complete else run.read_manifest()
        labels = run.read_labels() if run.labels_path.is_file() else None
        return Artifact("run", path, manifest["task"], labels, manifest, run)
    if path.is_dir() and (path / "saved_model.pb").is_file():
        meta_file = path / "assets" / "sensorium.json"
        shape = {"task?": str, "labels?": (type(None), [str])}  # the fields read
        meta = read_json_object(meta_file, shape) if meta_file.is_file() else {}
        labels_file = path / "assets" / "labels.txt"
        labels = read_text_lines(labels_file) if labels_file.is_file() else meta.get("labels")
        return Artifact("saved_model", path, meta.get("task"), labels, meta)
    if path.is_file() and path.suffix == ".keras":
        meta = _keras_metadata(path)
        if meta is None:
            return Artifact("keras", path, None)
        return Artifact("keras", path, meta.get("task"), meta.get("labels"), meta.get("info") or {})
    if path.is_file() and path.suffix == ".tflite":
        from sensorium.runtime.tflite import AssociatedFilesError, read_all, read_manifest

        try:
            files = read_all(path)
            meta = read_manifest(files) if files else {}
        except (AssociatedFilesError, OSError) as exc:
            raise ModelError(f"{path}: {exc}") from None
        labels = files["labels.txt"].decode("utf-8").splitlines() if "labels.txt" in files else meta.get("labels")
        return Artifact("tflite", path, meta.get("task"), labels, meta)
    if path.is_dir():
        raise ModelError(f"{path}: not a run directory (no sensorium.json) and not a SavedModel")
    raise ModelError(f"{path}: not a model (expected a run directory, .keras, SavedModel folder or .tflite)")


def require_task(artifact: Artifact, task: str) -> Artifact:
    if artifact.task is not None and artifact.task != task:
        raise ModelError(f"{artifact.path} is a '{artifact.task}' model, not '{task}'")
    return artifact


def load_keras(path: Path, *, compile: bool = False, custom_objects: dict[str, Any] | None = None):
    """`keras.saving.load_model(path, safe_mode=True)` with our layers registered, after the zip checks
    (`check_keras_file`); one-line errors. A hub backbone loads only its pinned module folder (see
    `sensorium.models.backbones.hub`): a refusal says how to re-trust it."""
    import keras

    import sensorium.models.backbones.hub  # noqa: F401  (registers our serialisable layers: the hub
    import sensorium.models.backbones.keras_apps  # noqa: F401  and embedded backbones, the blocks,
    import sensorium.models.blocks  # noqa: F401  and the subclassed generative models)
    import sensorium.models.gan  # noqa: F401
    import sensorium.models.vae  # noqa: F401
    from sensorium.models.backbones.hub import HubModuleError

    check_keras_file(path)
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=compile, custom_objects=custom_objects)
    except HubModuleError as exc:
        raise ModelError(f"{path}: {exc}") from None
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelError(f"{path}: cannot load the model ({first[:300]})") from None


def load_task_model(path: Path, task: str) -> tuple[Any, dict[str, Any]]:
    """`load_keras(path)` and its TaskMetadata ({"task", "labels", "info"}); a ModelError unless it is
    a Sensorium `task` model."""
    from sensorium.models.blocks.metadata import read_task_metadata

    model = load_keras(path)
    meta = read_task_metadata(model)
    if meta is None or meta["task"] != task:
        raise ModelError(f"{path}: not a Sensorium {task} model")
    meta["info"] = dict(meta.get("info") or {})
    return model, meta


def run_config(artifact: Artifact, config_cls: type[C]) -> C | None:
    """The resolved config of the run behind `artifact` (its config.json), or None outside a run; a bad
    config.json is a ModelError naming it."""
    if artifact.run is None or not artifact.run.config_path.is_file():
        return None
    return artifact.run.load_config(config_cls)


def load_predictor(model: Artifact | str | Path, predictor: type[P], *, keras: Callable[[Artifact], P],
                   saved_model: Callable[[Artifact], P] | None = None) -> P:
    """The Keras back ends' one artifact dispatch: a run directory or `.keras` file -> `keras(artifact)`,
    a SavedModel -> `saved_model(artifact)`, a `.tflite` -> the runtime's `predictor.from_tflite`.
    The artifact must serve `predictor.task`; the TensorFlow back ends need sensorium[full]."""
    from sensorium.pipelines.common.backend import require_tensorflow

    artifact = model if isinstance(model, Artifact) else inspect_artifact(model)
    require_task(artifact, predictor.task)
    if artifact.kind == "tflite":
        return predictor.from_tflite(artifact.path)
    require_tensorflow(f"a {predictor.task} model in a {KIND_NAMES[artifact.kind]}")
    if artifact.kind == "saved_model":
        if saved_model is None:
            raise ModelError(f"{artifact.path}: {predictor.task} SavedModels are not supported here; give the run "
                             "directory or the .tflite")
        return saved_model(artifact)
    return keras(artifact)
