"""How failures reach the user: typed errors that print as one clear line with the contract's exit
code (CONTRACTS.md), and native libraries' start-up banners kept off the terminal."""
from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any


class SensoriumError(Exception):
    """An error caused by the user's input or environment, shown as one line (exit code 1)."""

    exit_code = 1


class DataError(SensoriumError):
    """The data (a spec, a file, a dataset) is unusable."""


class InputError(DataError):
    """One input of a prediction call (an image, a recording, a text) cannot be used.

    `input` is what the call was given for it (a path, a text, or the index of an array in the
    list) and `index` its position in the call's inputs."""

    def __init__(self, message: str, *, input: Any = None, index: int | None = None) -> None:
        super().__init__(message)
        self.input = input
        self.index = index


class ModelError(SensoriumError):
    """A model artifact is missing, incomplete, corrupt or of another task."""


class UsageError(SensoriumError):
    """The command line or a config file is wrong (exit code 2, like argparse)."""

    exit_code = 2


class MissingExtraError(SensoriumError):
    """A verb needs an optional dependency set that is not installed."""


@contextlib.contextmanager
def native_stderr_silenced(enabled: bool = True) -> Iterator[None]:
    """Point file descriptor 2 at /dev/null for the block.

    Native libraries (TensorFlow, the TFLite runtime) print start-up banners from C++ straight to fd 2,
    before any log level applies; Python exceptions still carry their errors. SENSORIUM_NATIVE_LOGS=1
    lets them through."""
    if not enabled or os.environ.get("SENSORIUM_NATIVE_LOGS") == "1":
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
