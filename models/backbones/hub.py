"""TF Hub modules (tfhub.dev / Kaggle handles or local folders) as Keras 3 layers.

`hub.KerasLayer` cannot live in a Keras 3 model (it is a tf-keras layer: "A KerasTensor is symbolic").
`HubBackbone` loads the module with `tensorflow_hub.load` (so `TFHUB_CACHE_DIR` and pre-downloaded
modules work offline) and exposes every module variable as a Keras weight that *shares storage* with
the module's own `tf.Variable`: the module's functions read the very variables the optimizer updates,
so fine-tuning really changes the backbone, with any Keras optimizer, and `.keras` files save and
restore the fine-tuned values.

The module must follow the reusable SavedModel convention: `__call__(inputs, training)` plus
`variables` and `trainable_variables` lists (what `sensorium export --format hub-module` writes).
"""
from __future__ import annotations

import re
from typing import Any

import keras


class HubModuleError(ValueError):
    """A handle that cannot be resolved or a module Sensorium cannot use; one line saying why."""


RESOLVE_TIMEOUT_S = 30.0  # a network that drops packets must not hang resolution forever


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


def load_module(handle: str) -> Any:
    """Resolve and load a reusable TF2 SavedModel; one-line errors."""
    import tensorflow as tf

    path = resolve_handle(handle)
    try:
        module = tf.saved_model.load(path)
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
    """

    def __init__(self, handle: str, trainable_pattern: str | None = None, batchnorm_training: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.handle = handle
        self.trainable_pattern = trainable_pattern
        self.batchnorm_training = batchnorm_training
        self.module = load_module(handle)
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
        config.update(handle=self.handle, trainable_pattern=self.trainable_pattern,
                      batchnorm_training=self.batchnorm_training)
        return config
