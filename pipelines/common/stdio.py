"""Keep native libraries' start-up banners off the terminal (TensorFlow, the TFLite runtime).

Their C++ code writes to file descriptor 2 directly, before any log level applies, so the only way to
quiet them is to point fd 2 at /dev/null for the call. Python exceptions still carry the errors.
"""
from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterator


@contextlib.contextmanager
def native_stderr_silenced(enabled: bool = True) -> Iterator[None]:
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
