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


def load_module(handle: str) -> Any:
    """`tensorflow_hub.load(handle)` with one-line errors (offline resolution fails at once)."""
    try:
        import tensorflow_hub as hub
    except ImportError:
        raise HubModuleError('hub: backbones need tensorflow-hub: pip install "sensorium[full]"') from None
    try:
        module = hub.load(handle)
    except Exception as exc:  # resolver errors (network, 404), missing saved_model.pb, bad format
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise HubModuleError(f"cannot load hub module '{handle}': {first}") from None
    if not callable(module):
        raise HubModuleError(f"hub module '{handle}' has no __call__ signature (expected a reusable TF2 SavedModel)")
    if not hasattr(module, "variables"):
        raise HubModuleError(f"hub module '{handle}' does not list its variables (not a reusable SavedModel)")
    return module


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
        self._trainable_ids = {id(v) for v in getattr(self.module, "trainable_variables", [])}
        self._module_weights = []
        for i, var in enumerate(self.module.variables):
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
        outputs = self.module(inputs, training=use_training)
        if isinstance(outputs, dict):
            if len(outputs) != 1:
                raise HubModuleError(f"hub module '{self.handle}' returns several outputs ({', '.join(outputs)}); "
                                     "expected one feature vector")
            outputs = next(iter(outputs.values()))
        return outputs

    def compute_output_spec(self, inputs):
        import tensorflow as tf

        spec = tf.TensorSpec(tuple(inputs.shape), inputs.dtype)
        out = tf.function(lambda x: self.call(x)).get_concrete_function(spec).structured_outputs
        if len(out.shape) != 2:
            raise HubModuleError(f"hub module '{self.handle}' returns shape {tuple(out.shape)}; expected a "
                                 "feature vector (batch, features)")
        return keras.KerasTensor(tuple(out.shape), dtype=out.dtype.name)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(handle=self.handle, trainable_pattern=self.trainable_pattern,
                      batchnorm_training=self.batchnorm_training)
        return config
