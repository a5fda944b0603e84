"""The sentiment classifier of the runtime: texts in, a label and class probabilities out.

TFLite builtins have no string ops, so a sentiment `.tflite` takes int32 token ids; the SentencePiece
model packed inside it (`tokenizer.model`) turns texts into those ids with the `sentencepiece` package,
exactly as the SavedModel's in-graph tokenizer does. Records: `{"input", "ok", "label", "scores":
{label: probability}, "label_set"}`.

Label sets (`label_set`, the CLI's `--labels`): by default the model's own labels; "three" asks for
negative / neutral / positive, "binary" for positive vs negative from the binary head: p(positive) =
sigmoid(scale * (log p(positive) - log p(negative)) + bias), calibrated on the validation split's
positive and negative texts at the end of training with balanced priors (the model metadata's
`binary_calibration`; a model without one gets scale 1, bias 0, which is p(pos) / (p(pos) + p(neg))).
The record's "label_set" says which labels it reports. A model whose metadata records `lexicon_fusion`
adds VADER's calibrated opinion to the binary head's (`sensorium.runtime.lexicon_fusion`; `fusion`,
the CLI's `--fusion`: "lexicon", the default, or "none"); its binary records then say `"fusion":
"lexicon"`.

Long texts (`long_text`, the CLI's `--long-text`): "sentences" (the default) reads a text longer than
the model's training texts sentence by sentence and pools the sentences' probabilities
(`sensorium.runtime.text_windows`); "truncate" reads every text whole, cut to the model's window. The
length is the model metadata's `long_text_pieces` (recorded at training; a model without it splits only
texts that its window would cut). A model that takes strings itself (a hub encoder) reads texts whole.

Example::

    clf = TextClassifier.load()                # the bundled tweet model, its .tflite
    clf(["what a lovely day", "never again"])
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from sensorium.runtime.errors import ModelError, UsageError
from sensorium.runtime.lexicon_fusion import FUSION, Expert, lexicon_fusion, lexicon_logits, lexicon_ready
from sensorium.runtime.predictor import (
    Item,
    Predictor,
    Record,
    check_text,
    error_record,
    length_batches,
    ok_record,
    pad_rows,
)

BINARY_LABELS = ["negative", "positive"]
THREE_LABELS = ["negative", "neutral", "positive"]
LABEL_SETS = ("binary", "three")
LONG_TEXT = ("sentences", "truncate")


def label_set_of(labels: list[str]) -> str:
    """What a model's own labels are: "three", "binary" or "model" (any other set)."""
    if sorted(labels) == THREE_LABELS:
        return "three"
    return "binary" if sorted(labels) == BINARY_LABELS else "model"


def binary_calibration(info: dict[str, Any]) -> tuple[float, float]:
    """(scale, bias) of the binary head from model metadata (or a .tflite manifest's "model"); (1, 0)
    when the model has none or it is malformed."""
    cal = info.get("binary_calibration")
    if cal is None and isinstance(info.get("model"), dict):
        cal = info["model"].get("binary_calibration")
    try:
        scale, bias = float(cal["scale"]), float(cal["bias"])
    except (TypeError, KeyError, ValueError):
        return 1.0, 0.0
    return (scale, bias) if np.isfinite(scale) and np.isfinite(bias) else (1.0, 0.0)


def long_text_pieces(info: dict[str, Any], max_length: int | None) -> int | None:
    """How many pieces a text may have before it is read sentence by sentence: the model metadata's
    `long_text_pieces` (or a .tflite manifest's "model"), else what the window holds (`max_length` - 1:
    [BOS] takes one); None when neither is known or the recorded value is malformed and no window is."""
    value = info.get("long_text_pieces")
    if value is None and isinstance(info.get("model"), dict):
        value = info["model"].get("long_text_pieces")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    return max_length - 1 if max_length and max_length > 1 else None


def binary_probability(probs: np.ndarray, labels: list[str], scale: float = 1.0, bias: float = 0.0,
                       extra: np.ndarray | None = None) -> np.ndarray:
    """p(positive) (N,) of the binary head from class probabilities (N, C); `extra` (N,) adds another
    expert's calibrated log-odds (the lexicon's)."""
    pos, neg = labels.index("positive"), labels.index("negative")
    margin = np.log(np.maximum(probs[:, pos], 1e-12)) - np.log(np.maximum(probs[:, neg], 1e-12))  # (N,)
    z = scale * margin + bias + (0.0 if extra is None else np.asarray(extra, np.float64))
    z = np.clip(z, -60.0, 60.0)
    return 1.0 / (1.0 + np.exp(-z))


def run_on_ids(fn: Callable[[np.ndarray], np.ndarray], ids: list[list[int]], num_classes: int,
               batch_size: int = 64) -> np.ndarray:
    """`fn` (int32 (B, L) ids -> (B, C)) over length-grouped padded batches, back in input order: (N, C)."""
    out = np.zeros((len(ids), num_classes), np.float32)
    for idx in length_batches([len(x) for x in ids], batch_size):
        out[idx] = fn(pad_rows([ids[i] for i in idx], np.int32))
    return out


@dataclass
class TextClassifier(Predictor):
    """`run(texts) -> probabilities (N, C)` with the class labels."""

    run: Callable[[list[str]], np.ndarray]
    labels: list[str]
    source: str
    info: dict[str, Any]
    runtime: str = "keras"
    tokenizer: Any = None  # SubwordTokenizer (None for a model that takes strings itself)
    max_length: int | None = None

    label_set: str | None = None  # None: the model's own labels; "binary" or "three" (see the module docstring)
    long_text: str = "sentences"  # or "truncate" (see the module docstring)
    fusion: str = "lexicon"  # the binary head adds the lexicon expert where the model records it, or "none"

    task: ClassVar[str] = "sentiment"
    keras_backend: ClassVar[str] = "sensorium.pipelines.sentiment.predict:load"
    options: ClassVar[dict[str, Any]] = {"label_set": None, "long_text": "sentences", "fusion": "lexicon"}
    chunk_size: ClassVar[int] = 256

    def configure(self, **options: Any) -> TextClassifier:
        """As `Predictor.configure`; a label set the model cannot give is a UsageError."""
        if options.get("long_text") is not None and options["long_text"] not in LONG_TEXT:
            raise UsageError(f"long_text must be sentences or truncate, not {options['long_text']!r}")
        if options.get("fusion") is not None and options["fusion"] not in FUSION:
            raise UsageError(f"fusion must be lexicon or none, not {options['fusion']!r}")
        wanted = options.get("label_set")
        if wanted is not None:
            if wanted not in LABEL_SETS:
                raise UsageError(f"label_set must be binary or three, not {wanted!r}")
            have = set(self.labels)
            need = set(THREE_LABELS if wanted == "three" else BINARY_LABELS)
            if not need <= have or (wanted == "three" and len(have) != 3):
                raise UsageError(f"label_set {wanted}: this model's labels are {', '.join(self.labels)}; it cannot "
                                 f"give {', '.join(sorted(need))}")
        super().configure(**options)
        if self.label_set == "binary" and self.fused() is not None:
            lexicon_ready(self.fused())  # a missing vaderSentiment is one line now, not an error on every text
        return self

    @classmethod
    def from_tflite(cls, path: str | Path, *, num_threads: int | None = None) -> TextClassifier:
        """A sentiment `.tflite` on this runtime: tokenizer, labels and max_length from the file."""
        from sensorium.runtime.text_norm import normalization_of, with_normalization
        from sensorium.runtime.tflite import EdgeModel
        from sensorium.runtime.tokenizer import tokenizers_from

        model = EdgeModel(path, num_threads=num_threads)
        model.require_task(cls.task)
        tokenizer = with_normalization(tokenizers_from(str(path), files=model.files, manifest=model.manifest).source,
                                       normalization_of(model.manifest, str(path)))
        try:
            max_length = int(model.manifest["max_length"])
        except (KeyError, TypeError, ValueError):
            raise ModelError(f"{path}: sensorium.json lacks max_length") from None
        labels = model.labels
        if not labels:
            raise ModelError(f"{path}: the file carries no labels")
        if np.dtype(model.input["dtype"]) != np.int32 or len(model.input["shape_signature"]) != 2:
            raise ModelError(f"{path}: expected an int32 (batch, tokens) input, the model takes "
                             f"{model.input['dtype']} {tuple(model.input['shape_signature'])}")

        def run(texts: list[str]) -> np.ndarray:
            return run_on_ids(model, tokenizer.encode(texts, max_length), len(labels), batch_size=32)

        return cls(run, list(labels), str(path), dict(model.manifest), model.runtime, tokenizer, max_length)

    def encode(self, texts: list[str]) -> list[list[int]]:
        """The token ids the model reads ([BOS] + pieces, cut to max_length)."""
        if self.tokenizer is None:
            raise ModelError(f"{self.source}: this model takes strings; it has no tokenizer of its own")
        return self.tokenizer.encode(list(texts), int(self.max_length or 0))

    def predict(self, texts: list[str]) -> np.ndarray:
        """Probabilities (N, C) for `texts`, in order (long texts as `long_text` says)."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, len(self.labels)), np.float32)
        limit = long_text_pieces(self.info, self.max_length)
        if self.long_text == "truncate" or self.tokenizer is None or limit is None:
            return self.run(texts)
        from sensorium.runtime.text_windows import plan, pool

        rows, owner = plan(texts, [len(p) for p in self.tokenizer.encode_pieces(texts)], limit)
        if len(rows) == len(texts):
            return self.run(texts)
        return pool(self.run(rows), owner, len(texts))

    def predict_labelled(self, texts: list[str]) -> tuple[list[str], np.ndarray]:
        """(labels, probabilities (N, len(labels))) in the configured label set, for `texts` in order."""
        probs = self.predict(texts)
        if self.label_set == "binary":
            fused = self.fused()
            extra = None if fused is None else lexicon_logits(list(texts), *fused)
            p = binary_probability(probs, self.labels, *binary_calibration(self.info), extra=extra)  # (N,)
            return list(BINARY_LABELS), np.stack([1.0 - p, p], axis=1).astype(np.float32)
        if self.label_set == "three" and self.labels != THREE_LABELS:
            return list(THREE_LABELS), probs[:, [self.labels.index(name) for name in THREE_LABELS]]
        return list(self.labels), probs

    def fused(self) -> Expert | None:
        """The lexicon expert's calibration when the binary head adds it (recorded, and not turned off); read
        from `info` once (a domain's words are thousands of entries), again only if `info` is replaced."""
        if self.fusion == "none":
            return None
        read = self.__dict__.get("_expert_read")
        if read is None or read[0] is not self.info:
            read = self.__dict__["_expert_read"] = (self.info, lexicon_fusion(self.info))
        return read[1]

    def predict_items(self, items: list[Item]) -> list[Record]:
        errors = [item.error or check_text(item.value) for item in items]
        labels, probs = self.predict_labelled([item.value for item, error in zip(items, errors) if error is None])
        kind = self.label_set or label_set_of(self.labels)
        extra = {"fusion": "lexicon" if self.fused() else "none"} if self.label_set == "binary" else {}
        out, k = [], 0
        for item, error in zip(items, errors):
            if error is not None:
                out.append(error_record(item, error))
                continue
            p = probs[k]
            k += 1
            out.append(ok_record(item, label=labels[int(np.argmax(p))],
                                 scores={label: round(float(v), 6) for label, v in zip(labels, p)}, label_set=kind,
                                 **extra))
        return out
