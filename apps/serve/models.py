"""The models a server serves: chosen at start-up (`--model TASK[:NAME]=ARTIFACT`), loaded through the
runtime predictors, and described in TF Serving's status and metadata shapes.

A request names a model only by NAME, a key of the table built here; nothing a request says reaches a
file system path.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sensorium.apps.serve.batching import Batcher
from sensorium.apps.serve.inputs import INPUT_NAMES, RATE, SIGNATURES, Limits
from sensorium.runtime.errors import UsageError
from sensorium.runtime.predictor import BUNDLED, DEFAULTS

log = logging.getLogger(__name__)

TASK_ORDER = ("image", "speech", "sentiment", "translation")
# Instances per predictor call. Speech recordings are cut into segments of their own (its .tflite runs
# one waveform at a time), so speech requests are not batched together.
MAX_BATCH = {"image": 32, "speech": 1, "sentiment": 64, "translation": 16}
VERSION = "1"  # one version per served model (TF Serving's version directories; ours is fixed at start-up)
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")

# The record fields of each task (CONTRACTS.md, "JSON output"), as TF Serving-style outputs.
OUTPUTS = {
    "image": {"label": "DT_STRING", "score": "DT_FLOAT", "top_k": "list of {label, score}"},
    "speech": {"text": "DT_STRING", "duration": "DT_FLOAT", "segments": "list of {start, end, text}"},
    "sentiment": {"label": "DT_STRING", "scores": "object {label: probability}"},
    "translation": {"translation": "DT_STRING"},
}
ACCEPTS = {
    "image": ['{"b64": base64 of an encoded image (PNG, JPEG, BMP, GIF, WebP, TIFF)}',
              "uint8 pixels as nested lists: [H][W], [H][W][1], [H][W][3] or [H][W][4]"],
    "speech": ['{"b64": base64 of an audio file (WAV, FLAC, OGG/Vorbis/Opus, MP3, AIFF), any rate and channels}',
               "a mono waveform: a list of floats in [-1, 1] at 16 kHz",
               '{"waveform": [floats], "sample_rate": Hz}'],
    "sentiment": ["a string"],
    "translation": ["a string (English); placeholders such as %(name)s, {0} and HTML tags are kept"],
}


@dataclass(frozen=True)
class ModelSpec:
    """One `--model` option: the task, the name requests use, and the artifact (None: the bundled default)."""

    task: str
    name: str
    artifact: str | None = None


def parse_model_spec(text: str) -> ModelSpec:
    """`TASK[:NAME]=ARTIFACT` -> ModelSpec. TASK is a task or its command (`image` or `classify`); NAME
    defaults to the bundled model's name for a bundled ARTIFACT (`digits`), else to the task's name."""
    from sensorium.runtime.tasks import find_task

    key, sep, artifact = text.partition("=")
    task_text, _, name = key.partition(":")
    artifact = artifact.strip()
    if not sep or not task_text.strip() or not artifact:
        raise UsageError(f"--model {text!r}: expected TASK=ARTIFACT or TASK:NAME=ARTIFACT (e.g. image=runs/pets, "
                         "classify:pets=runs/pets/exports/model-int8.tflite)")
    task = find_task(task_text.strip())
    if task.name not in TASK_ORDER:
        raise UsageError(f"--model {text!r}: the {task.name} task cannot be served (tasks: {', '.join(TASK_ORDER)})")
    name = name.strip()
    if not name:
        bundled = BUNDLED.get(artifact)
        name = artifact if bundled is not None and not Path(artifact).exists() else task.name
    if not NAME_PATTERN.match(name):
        raise UsageError(f"--model {text!r}: a model name is 1-64 letters, digits, '_', '.' or '-', starting with a "
                         "letter or digit")
    return ModelSpec(task.name, name, artifact)


def default_specs() -> list[ModelSpec]:
    """Every bundled default model, named as it is bundled (digits, speech, sentiment, translation)."""
    return [ModelSpec(task, DEFAULTS[task]) for task in TASK_ORDER]


class ServedModel:
    """A model as the server serves it: its predictors (one per worker), their batcher, its metadata."""

    def __init__(self, spec: ModelSpec, predictors: list[Any], *, max_queue: int = 1024,
                 max_batch: int | None = None) -> None:
        self.name = spec.name
        self.task = spec.task
        self.artifact = spec.artifact
        self.predictors = predictors
        self.version = VERSION
        self.batcher = Batcher(spec.name, predictors, max_batch=max_batch or MAX_BATCH[spec.task], max_queue=max_queue)

    @property
    def predictor(self) -> Any:
        return self.predictors[0]

    def status(self, draining: bool = False) -> dict[str, Any]:
        """TF Serving's `GET /v1/models/NAME` answer."""
        return {"model_version_status": [{"version": self.version, "state": "UNLOADING" if draining else "AVAILABLE",
                                          "status": {"error_code": "OK", "error_message": ""}}]}

    def summary(self) -> dict[str, Any]:
        """Name, task and file of the model (the page's list; no server path)."""
        from sensorium.runtime.tasks import TASKS

        return {"name": self.name, "task": self.task, "command": TASKS.get(self.task).verb, "version": self.version,
                "file": Path(str(self.predictor.source)).name, "runtime": getattr(self.predictor, "runtime", None)}

    def metadata(self, limits: Limits) -> dict[str, Any]:
        """TF Serving's `GET /v1/models/NAME/metadata` answer: the signature, plus our details under
        "sensorium" (labels, input spec, record fields, batching, caps)."""
        input_name = INPUT_NAMES[self.task][0]
        dtype = "DT_STRING" if self.task != "speech" else "DT_STRING or DT_FLOAT"
        signature = {
            "inputs": {input_name: {"dtype": dtype, "tensor_shape": {"dim": [{"size": "-1", "name": ""}]},
                                    "name": input_name}},
            "outputs": {key: {"dtype": value if value.startswith("DT_") else "DT_INVALID", "name": key,
                              **({} if value.startswith("DT_") else {"json": value})}
                        for key, value in OUTPUTS[self.task].items()},
            "method_name": "tensorflow/serving/predict",
        }
        details: dict[str, Any] = {
            **self.summary(),
            "record_fields": ["input", "ok", *OUTPUTS[self.task]],
            "input": {"name": input_name, "also_named": list(INPUT_NAMES[self.task][1:]),
                      "accepts": ACCEPTS[self.task]},
            "batching": {"max_batch": self.batcher.max_batch, "workers": len(self.predictors),
                         "max_queue": self.batcher.max_queue},
            "limits": limits.describe(),
        }
        details.update(self._task_details())
        return {"model_spec": {"name": self.name, "signature_name": "", "version": self.version},
                "metadata": {"signature_def": {"signature_def": {name: signature for name in SIGNATURES[self.task]}},
                             "sensorium": details}}

    def _task_details(self) -> dict[str, Any]:
        p = self.predictor
        if self.task == "image":
            return {"labels": list(p.labels), "image_size": list(p.image_size), "options": {"top_k": int(p.top_k)}}
        if self.task == "speech":
            return {"sample_rate": RATE, "options": {"beam": int(p.beam), "max_segment": float(p.max_segment)}}
        if self.task == "sentiment":
            return {"labels": list(p.labels), "max_length": p.max_length}
        return {"max_source_length": int(p.max_source_length), "max_target_length": int(p.max_target_length),
                "options": {"beam": int(p.beam)}}


def load_models(specs: list[ModelSpec], *, workers: int = 1, runtime: str = "auto", num_threads: int | None = None,
                top_k: int = 5, max_queue: int = 1024) -> list[ServedModel]:
    """Load every model of `specs` (`workers` predictors each); one-line errors name the model."""
    from sensorium.runtime.tasks import TASKS

    names = [spec.name for spec in specs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UsageError(f"two models are named {twice[0]}: name one with --model TASK:NAME=ARTIFACT")
    if workers < 1:
        raise UsageError("--workers must be at least 1")
    models = []
    for spec in specs:
        cls = TASKS.get(spec.task).load("predictor")
        options = {"top_k": top_k} if spec.task == "image" else {}
        predictors = [cls.load(spec.artifact, runtime=runtime, num_threads=num_threads, **options)
                      for _ in range(workers)]
        model = ServedModel(spec, predictors, max_queue=max_queue)
        info = model.summary()
        log.info("loaded %s: %s model %s on %s (%d worker%s)", spec.name, spec.task, info["file"], info["runtime"],
                 workers, "s" if workers > 1 else "")
        models.append(model)
    return models
