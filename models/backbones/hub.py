"""TF Hub modules (tfhub.dev / Kaggle handles or local folders) as Keras 3 layers, pinned by hash.

`hub.KerasLayer` cannot live in a Keras 3 model (it is a tf-keras layer: "A KerasTensor is symbolic").
`HubBackbone` loads the module with `tensorflow_hub.load` (so `TFHUB_CACHE_DIR` and pre-downloaded
modules work offline) and exposes every module variable as a Keras weight that *shares storage* with
the module's own `tf.Variable`: the module's functions read the very variables the optimizer updates,
so fine-tuning really changes the backbone, with any Keras optimizer, and `.keras` files save and
restore the fine-tuned values.

The module must follow the reusable SavedModel convention: `__call__(inputs, training)` plus
`variables` and `trainable_variables` lists (what `sensorium export --format hub-module` writes).

Pinning (a module's graph is code): a handle is resolved only when a `HubBackbone` is constructed,
which is training time (`--backbone hub:...`, `--encoder hub:...`, or code). The layer's config, and
so the `.keras` file, records the module's resolved local folder as `handle` and the SHA-256 of its
`saved_model.pb` and of its `variables/` files as `pin`. Deserialising (`from_config`, which every
`.keras` load goes through) never resolves a handle: it loads the recorded folder only if it exists
and still has the pinned hashes, and refuses a URL, an unpinned or relative path, a missing folder or
a changed module in one line. `SENSORIUM_TRUST_HUB_MODULE=DIR[:DIR...]` (the CLI's
`--trust-hub-module DIR`) trusts folders as they are now, for that load: a model naming DIR loads it
with its current hashes, and when exactly one folder is trusted it also stands in for a module the
model names that is missing or remote (a moved module, an older model that recorded a URL).
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import keras


class HubModuleError(ValueError):
    """A handle that cannot be resolved or a module Sensorium cannot use; one line saying why."""


RESOLVE_TIMEOUT_S = 30.0  # a network that drops packets must not hang resolution forever
TRUST_ENV = "SENSORIUM_TRUST_HUB_MODULE"  # os.pathsep-separated folders trusted as they are now
TRUST_FLAG = "--trust-hub-module"
_HASH_CHUNK = 1 << 20


def resolve_handle(handle: str) -> str:
    """Local folder of `handle` through tensorflow_hub's resolver (honours `TFHUB_CACHE_DIR`, so a
    pre-downloaded module needs no network); one-line errors, and offline fails at once."""
    import socket

    try:
        import tensorflow_hub as hub
    except ImportError:
        raise HubModuleError('hub: backbones need tensorflow-hub: pip install "sensorium[full]"') from None
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(RESOLVE_TIMEOUT_S)
    try:
        return str(hub.resolve(handle))
    except Exception as exc:  # URLError (offline, DNS), HTTP 404, "does not exist", unsupported format
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        hint = " (no network? put the module in TFHUB_CACHE_DIR or pass a local folder)" if "urlopen" in first else ""
        raise HubModuleError(f"cannot resolve hub handle '{handle}': {first}{hint}") from None
    finally:
        socket.setdefaulttimeout(previous)


def resolve_local(handle: str) -> Path:
    """`resolve_handle`, as a local folder (a module tensorflow_hub reads from remote storage cannot be
    pinned)."""
    resolved = resolve_handle(handle)
    path = _local_path(resolved)
    if path is None:
        raise HubModuleError(f"hub handle '{handle}' resolves to remote storage ({resolved}); Sensorium pins "
                             "modules in local folders: download it and pass the folder")
    return path


@dataclass(frozen=True)
class ModulePin:
    """A module folder and the SHA-256 of its graph (`saved_model.pb`) and of its `variables/` files."""

    path: Path  # absolute
    saved_model: str
    variables: str

    def to_config(self) -> dict[str, str]:
        return {"saved_model.pb": self.saved_model, "variables": self.variables}


def _sha256_update(digest: Any, path: Path) -> None:
    with open(path, "rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            digest.update(chunk)


def pin_module(path: str | Path) -> ModulePin:
    """Hash the module in folder `path` as it is now: `saved_model.pb`, and every file under
    `variables/` in sorted order (its relative name and size, then its bytes)."""
    folder = Path(path).expanduser().resolve()
    graph = folder / "saved_model.pb"
    if not graph.is_file():
        raise HubModuleError(f"hub module folder {folder} has no saved_model.pb (not a TF2 SavedModel)")
    graph_digest = hashlib.sha256()
    _sha256_update(graph_digest, graph)
    variables_digest = hashlib.sha256()
    root = folder / "variables"
    for file in sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []:
        variables_digest.update(f"{file.relative_to(root).as_posix()}\0{file.stat().st_size}\0".encode())
        _sha256_update(variables_digest, file)
    return ModulePin(folder, graph_digest.hexdigest(), variables_digest.hexdigest())


def trusted_modules() -> list[Path]:
    """The folders `SENSORIUM_TRUST_HUB_MODULE` trusts (os.pathsep-separated), resolved."""
    value = os.environ.get(TRUST_ENV, "")
    return [Path(item).expanduser().resolve() for item in value.split(os.pathsep) if item.strip()]


def _local_path(handle: str) -> Path | None:
    """The local path a handle names (a path or a `file://` URL), None for a remote handle."""
    if handle.startswith("file://"):
        return Path(unquote(urlparse(handle).path))
    if "://" in handle:
        return None
    return Path(handle).expanduser()


def _pinned_digests(pin: Any) -> tuple[str, str] | None:
    """(saved_model.pb, variables) SHA-256 that a config's `pin` records; None unless well formed."""
    if not isinstance(pin, dict):
        return None
    digests = pin.get("saved_model.pb"), pin.get("variables")
    if not all(isinstance(v, str) and re.fullmatch(r"[0-9a-f]{64}", v) for v in digests):
        return None
    return digests


def _trusted_stand_in(location: Path | None) -> Path | None:
    """The trusted folder to load instead of what the config names: that folder itself when trusted;
    for a missing or remote module, the one trusted folder (none when several are trusted)."""
    trusted = trusted_modules()
    if location is not None and location.exists():
        resolved = location.resolve()
        return next((folder for folder in trusted if folder == resolved), None)
    return trusted[0] if len(trusted) == 1 else None


def _retrust_hint(folder: str) -> str:
    return f"if you trust it, pass {TRUST_FLAG} {folder} (or set {TRUST_ENV}={folder})"


def _pinned_location(handle: str, location: Path | None, pin: Any) -> tuple[Path, tuple[str, str]]:
    """The absolute existing folder and pinned hashes a config records; one-line refusal otherwise."""
    if location is None:
        raise HubModuleError(f"the model file names the remote hub module '{handle}'; loading a model never "
                             f"downloads: put the module in a local folder and pass {TRUST_FLAG} DIR "
                             f"(or set {TRUST_ENV}=DIR) if you trust it")
    if location.is_absolute() and not location.exists():
        raise HubModuleError(f"the hub module folder {handle} that the model file names is missing (moved or "
                             f"deleted); pass {TRUST_FLAG} DIR (or set {TRUST_ENV}=DIR) to use it from DIR")
    digests = _pinned_digests(pin)
    if digests is None or not location.is_absolute():  # a relative path would depend on the working folder
        raise HubModuleError(f"the hub module {handle} is not pinned in the model file (no SHA-256 of its files "
                             f"recorded for an absolute folder); {_retrust_hint(handle)}")
    return location, digests


def verify_pinned_module(handle: Any, pin: Any) -> ModulePin:
    """The module a deserialised layer may load: the recorded folder with its pinned hashes, or a
    trusted folder re-pinned as it is now. Never resolves a handle (no network); one-line refusals."""
    if not isinstance(handle, str) or not handle:
        raise HubModuleError(f"hub module handle {handle!r} in the model file is not a folder path")
    location = _local_path(handle)
    stand_in = _trusted_stand_in(location)
    if stand_in is not None:
        return pin_module(stand_in)
    folder, (graph, variables) = _pinned_location(handle, location, pin)
    current = pin_module(folder)
    changed = [name for name, want, got in (("saved_model.pb", graph, current.saved_model),
                                            ("variables", variables, current.variables)) if want != got]
    if changed:
        raise HubModuleError(f"the hub module {handle} changed since the model was saved ({' and '.join(changed)} "
                             f"differ from the SHA-256 pinned in the model file); {_retrust_hint(handle)}")
    return current


def load_module(handle: str) -> Any:
    """Resolve and load a reusable TF2 SavedModel; one-line errors."""
    return load_module_at(resolve_handle(handle), handle)


def load_module_at(path: str | Path, handle: str) -> Any:
    """Load the reusable TF2 SavedModel in local folder `path` (`handle`: its name in messages)."""
    import tensorflow as tf

    try:
        module = tf.saved_model.load(str(path))
    except Exception as exc:  # missing or corrupt saved_model.pb, a TF1 hub module, ...
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise HubModuleError(f"cannot load hub module '{handle}': {first}") from None
    if not callable(module) or not getattr(module.__call__, "concrete_functions", None):
        raise HubModuleError(f"hub module '{handle}' has no usable __call__ signature (expected a reusable TF2 "
                             "SavedModel taking images (batch, height, width, 3))")
    return module


def module_variables(module: Any) -> tuple[list[Any], list[Any]]:
    """(all variables, trainable variables) of a loaded module: its `variables` / `trainable_variables`
    lists (the reusable SavedModel convention), else every tf.Variable reachable from it."""
    import tensorflow as tf

    if hasattr(module, "variables"):
        variables = list(module.variables)
        trainable = list(getattr(module, "trainable_variables", variables))
        return variables, trainable
    seen: dict[int, Any] = {}
    for obj in tf.train.TrackableView(module).descendants():
        if isinstance(obj, tf.Variable) and id(obj) not in seen:
            seen[id(obj)] = obj
    variables = list(seen.values())
    return variables, [v for v in variables if v.trainable]


@keras.saving.register_keras_serializable(package="sensorium")
class HubBackbone(keras.layers.Layer):
    """A hub module as a layer: `(B, ...) -> (B, features)`.

    Args:
        handle: tfhub.dev / Kaggle URL, `file://` URL or local folder of a reusable SavedModel.
        trainable_pattern: regex; when set, only module variables whose name matches are trainable
            (a module has variables, not layers).
        batchnorm_training: pass `training=True` to the module while training. Default False keeps
            batch-norm statistics frozen (inference mode), which is what small-data fine-tuning needs.
        origin: the handle the module was first resolved from (informational; `handle` by default).
        pin: a verified `ModulePin` (what `from_config` passes); without one, `handle` is resolved
            and the folder pinned as it is now, which is training time.
    """

    def __init__(self, handle: str, trainable_pattern: str | None = None, batchnorm_training: bool = False,
                 origin: str | None = None, pin: ModulePin | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.handle = handle
        self.origin = origin or handle
        self.trainable_pattern = trainable_pattern
        self.batchnorm_training = batchnorm_training
        if isinstance(pin, ModulePin):
            self.module = load_module_at(pin.path, handle)
        else:  # constructed in code: resolve the handle (training time), load, then pin what was loaded
            path = resolve_local(handle)
            self.module = load_module_at(path, handle)
            pin = pin_module(path)
        self.pin = pin
        self._specs: dict[tuple, keras.KerasTensor] = {}
        variables, trainable = module_variables(self.module)
        self._trainable_ids = {id(v) for v in trainable}
        self._module_weights = []
        for i, var in enumerate(variables):
            name = var.name.split(":")[0]
            weight = self.add_weight(shape=tuple(var.shape), dtype=var.dtype.name, initializer="zeros",
                                     name=f"v{i}_{re.sub(r'[^A-Za-z0-9_]', '_', name)}")
            weight._value = var  # share storage: the module's functions read what the optimizer updates
            self._module_weights.append((weight, var))
        self.set_trainable_pattern(trainable_pattern)
        self.built = True

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> HubBackbone:
        """Deserialise (loading a `.keras` file): load only the pinned folder, or a trusted one; never
        resolve the handle (see the module doc)."""
        config = dict(config)
        handle = config.pop("handle", None)
        pin = verify_pinned_module(handle, config.pop("pin", None))
        config["origin"] = config.get("origin") or handle
        return cls(handle=str(pin.path), pin=pin, **config)

    def set_trainable_pattern(self, pattern: str | None) -> None:
        """Make trainable the module's trainable variables whose name matches `pattern` (None: all);
        a frozen layer (`trainable=False`, also as restored from a .keras file) keeps them all frozen."""
        regex = re.compile(pattern) if pattern else None
        self.trainable_pattern = pattern
        for weight, var in self._module_weights:
            weight.trainable = self.trainable and id(var) in self._trainable_ids and (
                regex is None or bool(regex.search(var.name.split(":")[0])))

    def call(self, inputs, training: bool | None = None):
        # inputs: whatever the module takes (e.g. (B, H, W, 3) float images) -> (B, features)
        use_training = bool(training) and self.batchnorm_training and self.trainable
        if self._accepts_training():
            outputs = self.module(inputs, training=use_training)
        else:  # e.g. text encoders whose __call__ takes the strings only
            outputs = self.module(inputs)
        if isinstance(outputs, dict):
            if len(outputs) != 1:
                raise HubModuleError(f"hub module '{self.handle}' returns several outputs ({', '.join(outputs)}); "
                                     "expected one feature vector")
            outputs = next(iter(outputs.values()))
        return outputs

    def _accepts_training(self) -> bool:
        """Whether the module's `__call__` takes a `training` argument (the reusable SavedModel API)."""
        if not hasattr(self, "_takes_training"):
            call = getattr(self.module, "__call__", None)  # noqa: B004 - a tf.function's attributes, not a test
            functions = getattr(call, "concrete_functions", None) or []
            self._takes_training = not functions or any(
                "training" in (f.structured_input_signature[1] or {}) or len(f.structured_input_signature[0]) > 1
                for f in functions)
        return self._takes_training

    def __call__(self, inputs, *args, **kwargs):
        if isinstance(inputs, keras.KerasTensor):  # check while building a model, outside Keras's
            self._output_spec(tuple(inputs.shape), str(inputs.dtype))  # error wrapping: one line
        return super().__call__(inputs, *args, **kwargs)

    def compute_output_spec(self, inputs):
        return self._output_spec(tuple(inputs.shape), str(inputs.dtype))

    def _output_spec(self, shape: tuple, dtype: str) -> keras.KerasTensor:
        """Trace the module on `shape`: (B, features), or a one-line error saying what it expects.
        Remembered per (shape, dtype): `__call__` checks, then Keras asks again."""
        key = (shape, dtype)
        if key not in self._specs:
            self._specs[key] = self._trace_output_spec(shape, dtype)
        return self._specs[key]

    def _trace_output_spec(self, shape: tuple, dtype: str) -> keras.KerasTensor:
        import tensorflow as tf

        try:
            out = tf.function(lambda x: self.call(x)).get_concrete_function(tf.TensorSpec(shape, dtype))
            out = out.structured_outputs
        except (TypeError, ValueError) as exc:
            if isinstance(exc, HubModuleError):
                raise
            accepted = [str(tuple(f.structured_input_signature[0][0].shape))
                        for f in self.module.__call__.concrete_functions if f.structured_input_signature[0]]
            raise HubModuleError(f"hub module '{self.handle}' rejects input {shape} {dtype}; it accepts "
                                 f"{' or '.join(accepted) or 'other inputs'}"
                                 + (" (set --image-size to match)" if len(shape) == 4 else "")) from None
        if len(out.shape) != 2:
            raise HubModuleError(f"hub module '{self.handle}' returns shape {tuple(out.shape)}; expected a "
                                 "feature vector (batch, features)")
        return keras.KerasTensor(tuple(out.shape), dtype=out.dtype.name)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(handle=str(self.pin.path), pin=self.pin.to_config(), origin=self.origin,
                      trainable_pattern=self.trainable_pattern, batchnorm_training=self.batchnorm_training)
        return config
