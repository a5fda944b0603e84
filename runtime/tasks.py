"""The task registry: what each task is called and where its parts live, and `pipeline()`.

Every entry point is a "module:attribute" string imported on use, so listing tasks (`--help`) and
the edge runtime import no TensorFlow, and this bottom layer names the upper layers' parts without
importing them. The CLI builds `train TASK`, `evaluate`, `export` and `tune` from this registry, so a
new task needs no new CLI code.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sensorium.runtime.errors import UsageError
from sensorium.runtime.registry import Registry


@dataclass(frozen=True)
class Task:
    """A task: how to configure, train, evaluate, export and run it."""

    name: str
    description: str
    config: str  # "module:ConfigClass"
    train: str  # "module:function(config, run_dir, resume) -> dict"
    evaluate: str  # "module:function(artifact, spec, ...) -> dict"
    flags: str  # "module:FLAGS", the `train|tune TASK` options (pipelines/common/flags.py)
    export: str  # "module:ExportSource" (export/api.py drives it)
    batch: str = ""  # "module:BatchTaskClass" for batch evaluation jobs (pipelines/batch)
    search_space: str = ""  # "module:SEARCH_SPACE", what `sensorium tune TASK` varies (pipelines/tuning/space.py)
    predictor: str = ""  # "module:Predictor" of the runtime: the Python API and the edge runtime
    verb: str = ""  # the inference command (`classify`, ...), also accepted by `pipeline()`

    def load(self, attr: str) -> Any:
        """Import the part named by field `attr`."""
        target = getattr(self, attr)
        if not target:
            raise UsageError(f"the {self.name} task has no {attr.replace('_', ' ')}")
        module, _, name = target.partition(":")
        return getattr(importlib.import_module(module), name)

    def batch_task(self, options: dict[str, Any] | None = None, context: dict[str, Any] | None = None) -> Any:
        """A new `BatchTask` of this task (see pipelines/batch/task.py)."""
        if not self.batch:
            raise UsageError(f"batch evaluation jobs are not available for {self.name} models yet")
        return self.load("batch")(options, context)


TASKS: Registry[Task] = Registry("task")


def _pipelines(package: str, **extra: str) -> dict[str, str]:
    """The conventional places of a task's parts in `sensorium.pipelines.<package>` (`extra` overrides)."""
    base = f"sensorium.pipelines.{package}"
    parts = {"train": f"{base}.train:train", "evaluate": f"{base}.evaluate:evaluate", "flags": f"{base}.flags:FLAGS",
             "search_space": f"{base}.config:SEARCH_SPACE"}
    parts.update(extra)
    return parts


TASKS.register("image", Task(
    "image", "image classification with a CNN built from shared blocks",
    config="sensorium.pipelines.image.config:ImageClassificationConfig",
    predictor="sensorium.runtime.image:ImageClassifier", verb="classify",
    batch="sensorium.pipelines.image.batch:ImageBatchTask", export="sensorium.export.image:ImageExportSource",
    **_pipelines("image")))
TASKS.register("speech", Task(
    "speech", "speech recognition: log-mel front end, conv + LSTM encoder, CTC over characters",
    config="sensorium.pipelines.speech.config:SpeechConfig",
    predictor="sensorium.runtime.speech:SpeechRecognizer", verb="transcribe",
    batch="sensorium.pipelines.speech.batch:SpeechBatchTask", export="sensorium.export.speech:SpeechExportSource",
    **_pipelines("speech")))
TASKS.register("sentiment", Task(
    "sentiment", "sentiment / text classification: subword tokenizer, Transformer encoder (or a TF Hub text encoder)",
    config="sensorium.pipelines.sentiment.config:SentimentConfig",
    predictor="sensorium.runtime.sentiment:TextClassifier", verb="sentiment",
    batch="sensorium.pipelines.sentiment.batch:SentimentBatchTask",
    export="sensorium.export.sentiment:SentimentExportSource",
    **_pipelines("sentiment")))
TASKS.register("translation", Task(
    "translation", "machine translation: Transformer encoder-decoder over subwords, placeholders protected",
    config="sensorium.pipelines.translation.config:TranslationConfig",
    predictor="sensorium.runtime.translation:Translator", verb="translate",
    batch="sensorium.pipelines.translation.batch:TranslationBatchTask",
    export="sensorium.export.translation:TranslationExportSource",
    **_pipelines("translation")))
for _name, _config, _description in (
        ("autoencoder", "AutoencoderConfig", "convolutional (denoising) autoencoder: reconstruction, denoising, "
                                             "anomaly scores"),
        ("vae", "VAEConfig", "convolutional variational autoencoder: generation from latent vectors, ELBO"),
        ("gan", "GANConfig", "DCGAN: a generator and a discriminator trained against each other")):
    TASKS.register(_name, Task(
        _name, _description, config=f"sensorium.pipelines.generative.config:{_config}",
        **_pipelines("generative", train=f"sensorium.pipelines.generative.train:train_{_name}",
                     flags=f"sensorium.pipelines.generative.flags:{_name.upper()}_FLAGS", search_space="",
                     export="sensorium.export.generative:GenerativeExportSource")))


def find_task(name: str) -> Task:
    """The task called `name`, or whose inference command is `name` (`classify` -> image)."""
    if name in TASKS:
        return TASKS.get(name)
    for task_name in TASKS:
        task = TASKS.get(task_name)
        if task.verb and task.verb == name:
            return task
    verbs = sorted(t.verb for t in map(TASKS.get, TASKS) if t.verb)
    runnable = sorted(t.name for t in map(TASKS.get, TASKS) if t.predictor)
    raise UsageError(f"unknown task '{name}'; known: {', '.join(verbs + runnable)}")


def pipeline(task: str, model: str | Path | None = None, **options: Any) -> Any:
    """A predictor for `task` (image, speech, sentiment, translation, or the commands classify,
    transcribe, sentiment, translate): called on one input it returns one record, on a list a list of
    records, the same dicts as the CLI's `--json` lines.

    model: a bundled model's name, a run directory, `.keras`, SavedModel or `.tflite`; None is the
    task's bundled default. Options: `runtime` (auto | edge | keras), `num_threads`, and the task's
    own (`top_k`; `beam`, `max_segment`; `beam`, `length_penalty`)."""
    found = find_task(task)
    if not found.predictor:
        raise UsageError(f"the {found.name} task has no predictor in the Python API; use the sensorium CLI")
    return found.load("predictor").load(model, **options)
