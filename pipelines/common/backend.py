"""TensorFlow and Keras as the back end of training, evaluation, export and the Keras predictors."""
from __future__ import annotations

from sensorium.runtime.errors import MissingExtraError, native_stderr_silenced


def require_tensorflow(verb: str, *, quiet: bool = True) -> None:
    """Import TensorFlow and Keras (with their native start-up chatter silenced unless `quiet` is
    False), failing with one line naming the extra to install when they are unavailable."""
    try:
        with native_stderr_silenced(quiet):
            import tensorflow as tf

            tf.config.list_physical_devices("GPU")  # the CUDA probe prints too: do it now, silenced
            import keras  # noqa: F401
    except ImportError as exc:
        raise MissingExtraError(
            f"'{verb}' needs TensorFlow ({exc.name or exc} is not installed): "
            'pip install "sensorium[full]"'
        ) from None
