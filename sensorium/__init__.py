"""Sensorium: see, hear and read. Image, speech and text models on TensorFlow/Keras, from data to the edge.

The Python API::

    import sensorium
    clf = sensorium.pipeline("classify")          # the bundled default; model=... for any model
    clf("cat.jpg")                                # {"input", "ok", "label", "score", "top_k"}
    sensorium.pipeline("translate", beam=4)("Delete %(name)s?")

`import sensorium` works on the edge-only install (`pip install sensorium`) and imports no TensorFlow
until a Keras or SavedModel artifact needs it. The packages: `sensorium.runtime` (TensorFlow-free:
the predictors, readers, tokenizer, decoding), `sensorium.models`, `sensorium.pipelines`,
`sensorium.export`, `sensorium.apps`.
"""
from __future__ import annotations

import pkgutil
from typing import Any

from sensorium.runtime.errors import InputError, ModelError, SensoriumError

# A checkout's ./sensorium (this folder) may shadow an installed copy when Python runs from the
# repository root: let the installed package's sub-packages be found too.
__path__ = pkgutil.extend_path(__path__, __name__)


def __getattr__(name: str) -> Any:
    """`__version__`, read from the installed distribution on first use (keeps `import sensorium` fast)."""
    if name == "__version__":
        from importlib import metadata

        try:
            version = metadata.version("sensorium")
        except metadata.PackageNotFoundError:
            version = "0+unknown"
        globals()["__version__"] = version
        return version
    raise AttributeError(f"module 'sensorium' has no attribute {name!r}")


def pipeline(task: str, model: Any = None, **options: Any) -> Any:
    """A predictor for `task`: "classify" (or "image"), "transcribe" ("speech"), "sentiment",
    "translate" ("translation"). Called on one input it returns one record, on a list a list of
    records: the same dicts as the CLI's `--json` lines. Bad input raises `InputError`, or comes
    back as an `{"ok": False, "error": ...}` record when called with `errors="record"`.

    model: a bundled model's name (imagenet, digits, speech, sentiment, translation), a run directory, a `.keras`
    file, a SavedModel or a `.tflite`; None is the task's bundled default (its `.tflite`, run without
    TensorFlow). Options: runtime="auto"|"edge"|"keras", num_threads, and the task's own: top_k
    (classify); beam, max_segment, batch_size (transcribe); label_set="binary"|"three" (sentiment); beam,
    length_penalty (translate)."""
    from sensorium.runtime.tasks import pipeline as _pipeline

    return _pipeline(task, model, **options)


__all__ = ["InputError", "ModelError", "SensoriumError", "__version__", "pipeline"]
