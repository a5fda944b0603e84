"""User-facing errors: each prints as one clear line and maps to an exit code (see CONTRACTS.md)."""
from __future__ import annotations


class SensoriumError(Exception):
    """An error caused by the user's input or environment, shown as one line (exit code 1)."""

    exit_code = 1


class DataError(SensoriumError):
    """The data (a spec, a file, a dataset) is unusable."""


class ModelError(SensoriumError):
    """A model artifact is missing, incomplete, corrupt or of another task."""


class UsageError(SensoriumError):
    """The command line or a config file is wrong (exit code 2, like argparse)."""

    exit_code = 2


class MissingExtraError(SensoriumError):
    """A verb needs an optional dependency set that is not installed."""


def require_tensorflow(verb: str, *, quiet: bool = True) -> None:
    """Import TensorFlow and Keras (with their native start-up chatter silenced unless `quiet` is
    False), failing with one line naming the extra to install when they are unavailable."""
    from sensorium.pipelines.common.stdio import native_stderr_silenced

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
