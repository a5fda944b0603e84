"""The translator of the runtime: texts in, translations out, placeholders kept.

A translation `.tflite` holds two TFLite signatures (builtin ops only):

- ``encode(source_ids int32 (B, S)) -> memory float32 (B, S, D)``
- ``decode_step(memory (N, S, D), source_ids (N, S), target_ids int32 (N, t)) -> log_probs float32 (N, V)``
  (the next-token log-probabilities after the prefix ``target_ids``, which starts with BOS = 2)

and packs its tokenizer(s) and ``sensorium.json``. The loop around them is the same for every back
end: placeholders and tags are protected (`sensorium.runtime.placeholders`), the text is tokenised,
greedy or beam search (`sensorium.runtime.beam_search`) decodes under constraints that keep every
placeholder, and the placeholders are restored. Records: `{"input", "ok", "translation"}`.

Example::

    tr = Translator.load(beam=4)               # the bundled English -> German UI model
    tr("Delete %(name)s?")["translation"]
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from sensorium.runtime.errors import InputError, ModelError, UsageError
from sensorium.runtime.predictor import Item, Predictor, Record, check_text, error_record, length_batches, ok_record

Encode = Callable[[np.ndarray], np.ndarray]  # source ids (B, S) int32 -> memory (B, S, D) float32
Step = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]  # memory, source ids, prefixes -> log-probs (N, V)
SIGNATURES = ("encode", "decode_step")


def model_length_penalty(info: Any, source: str) -> float | None:
    """The length penalty a model's metadata (`info`, a dict or None) records as its own (chosen on
    validation when it was trained), or None; a value that is not a number in [0, 5] is a ModelError."""
    value = info.get("length_penalty") if isinstance(info, dict) else None
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= float(value) <= 5:
        raise ModelError(f"{source}: the model's length_penalty must be a number between 0 and 5, "
                         f"got {str(value)[:40]!r}")
    return float(value)


SPLITS = ("sentences", "none")
_BRACES = re.compile(r"[{}]")


def unsplittable(text: str) -> list[tuple[int, int]]:
    """Sorted, disjoint spans of `text` that a sentence split must not cut: its placeholders and tags
    (a `title="Saved. Close"` attribute), and whatever lies inside braces (an ICU plural's
    `{count, plural, one {# file. Open it}}`; an unclosed brace runs to the end). Linear time."""
    from sensorium.runtime.placeholders import PLACEHOLDER_PATTERN

    spans = [m.span() for m in PLACEHOLDER_PATTERN.finditer(text)]
    depth, start = 0, 0
    for m in _BRACES.finditer(text):
        if m.group(0) == "{":
            depth, start = depth + 1, (m.start() if depth == 0 else start)
        elif depth:
            depth -= 1
            if depth == 0:
                spans.append((start, m.end()))
    if depth:
        spans.append((start, len(text)))
    spans.sort()
    merged: list[tuple[int, int]] = []
    for a, b in spans:
        if merged and a < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    return merged


@dataclass
class Translator(Predictor):
    """`translate(texts, beam)` -> translations. `encode`/`step` run the model; the rest is shared."""

    encode: Encode
    step: Step
    tokenizers: Any  # sensorium.runtime.tokenizer.Tokenizers
    max_source_length: int
    max_target_length: int
    source: str
    max_batch: int = 32
    length_penalty: float | None = None  # beam search's GNMT alpha (None: beam_search.DEFAULT_LENGTH_PENALTY)
    beam: int = 4
    runtime: str = "keras"
    tuned_length_penalty: float | None = None  # the model's own alpha, chosen on validation (its metadata)
    split: str = "sentences"  # or "none": see translate()

    task: ClassVar[str] = "translation"
    keras_backend: ClassVar[str] = "sensorium.pipelines.translation.predict:load"
    options: ClassVar[dict[str, Any]] = {"beam": 4, "length_penalty": None, "split": "sentences"}
    chunk_size: ClassVar[int] = 64

    @classmethod
    def from_tflite(cls, path: str | Path, *, num_threads: int | None = None) -> Translator:
        """A translation `.tflite` on this runtime: its `encode` and `decode_step` signatures."""
        from sensorium.runtime.errors import ModelError
        from sensorium.runtime.tflite import EdgeModel
        from sensorium.runtime.tokenizer import BOS_ID, tokenizers_from

        model = EdgeModel(path, num_threads=num_threads)
        model.require_task(cls.task)
        tokenizers = tokenizers_from(str(path), files=model.files, manifest=model.manifest)
        try:
            max_source, max_target = int(model.manifest["max_source_length"]), int(model.manifest["max_target_length"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{path}: sensorium.json lacks the lengths ({exc})") from None
        encode_runner, step_runner = (model.signature(name) for name in SIGNATURES)

        def encode(source_ids: np.ndarray) -> np.ndarray:
            return encode_runner(source_ids=np.asarray(source_ids, np.int32))["memory"]

        def step(memory: np.ndarray, source_ids: np.ndarray, target_ids: np.ndarray) -> np.ndarray:
            return step_runner(memory=np.asarray(memory, np.float32), source_ids=np.asarray(source_ids, np.int32),
                               target_ids=np.asarray(target_ids, np.int32))["log_probs"]

        try:
            encode(np.array([[BOS_ID]], np.int32))  # the first call allocates; a broken file fails here
        except (ValueError, RuntimeError) as exc:
            reason = " ".join(str(exc).split())[:200]
            raise ModelError(f"{path}: corrupt or unsupported TFLite model ({reason})") from None
        tuned = model_length_penalty(model.manifest.get("model"), str(path))
        return cls(encode, step, tokenizers, max_source, max_target, str(path), runtime=model.runtime,
                   tuned_length_penalty=tuned)

    def configure(self, **options: Any) -> Translator:
        super().configure(**options)
        if not 1 <= int(self.beam) <= 64:
            raise UsageError("beam must be between 1 and 64")
        if self.length_penalty is not None and not 0 <= float(self.length_penalty) <= 5:
            raise UsageError("length_penalty must be between 0 and 5")
        if self.split not in SPLITS:
            raise UsageError(f"split must be sentences or none, not {self.split!r}")
        return self

    # --- the shared loop ------------------------------------------------------------------------
    def prepare(self, texts: list[str]) -> tuple[list[list[int]], list[list[str]], list[Any]]:
        """(source ids, placeholder originals, decoding constraints) per text."""
        from sensorium.runtime.beam_search import Constraint
        from sensorium.runtime.placeholders import PLACEHOLDER_SYMBOLS, protect
        from sensorium.runtime.tokenizer import BOS_ID, PAD_ID, UNK_ID

        symbol_ids = [self.tokenizers.target.piece_to_id(s) for s in PLACEHOLDER_SYMBOLS]
        ids, originals, constraints = [], [], []
        for text in texts:
            try:  # NUL becomes a space (the SavedModel's splitter stops at it)
                masked, found = protect(text.replace("\x00", " "))
            except ValueError as exc:  # more distinct literal <phN> strings than symbols
                raise InputError(str(exc)) from None
            ids.append(self.tokenizers.source.encode([masked], self.max_source_length)[0])
            originals.append(found)
            required: dict[int, int] = {}
            for k, sym in enumerate(PLACEHOLDER_SYMBOLS):
                n = masked.count(sym)
                if n:
                    required[symbol_ids[k]] = n
            forbidden = frozenset({PAD_ID, BOS_ID, UNK_ID} | {i for i in symbol_ids if i not in required})
            constraints.append(Constraint(required=required, forbidden=forbidden))
        return ids, originals, constraints

    def decode_ids(self, source_ids: list[list[int]], constraints: list[Any], beam: int = 1) -> list[list[int]]:
        """Target ids (no BOS/EOS) per source, decoded in batches of similar length."""
        from sensorium.runtime.beam_search import DEFAULT_LENGTH_PENALTY, append_missing, beam_search, greedy_decode
        from sensorium.runtime.tokenizer import BOS_ID, EOS_ID

        alpha = self.length_penalty if self.length_penalty is not None else self.tuned_length_penalty
        alpha = DEFAULT_LENGTH_PENALTY if alpha is None else float(alpha)
        out: list[list[int] | None] = [None] * len(source_ids)
        for idx in length_batches([len(s) for s in source_ids], self.max_batch):
            batch = np.zeros((len(idx), max(len(source_ids[i]) for i in idx)), np.int32)  # (B, S)
            for row, i in enumerate(idx):
                batch[row, : len(source_ids[i])] = source_ids[i]
            memory = self.encode(batch)  # (B, S, D)

            def step(rows: np.ndarray, prefixes: np.ndarray, memory=memory, batch=batch) -> np.ndarray:
                return self.step(memory[rows], batch[rows], prefixes.astype(np.int32))

            limits = [min(self.max_target_length, 2 * len(source_ids[i]) + 10) for i in idx]
            cons = [constraints[i] for i in idx]
            if beam <= 1:
                found = greedy_decode(step, len(idx), bos_id=BOS_ID, eos_id=EOS_ID, max_lengths=limits,
                                      constraints=cons)
            else:
                found = beam_search(step, len(idx), bos_id=BOS_ID, eos_id=EOS_ID, max_lengths=limits, beam=beam,
                                    length_penalty=alpha, constraints=cons)
            for row, i in enumerate(idx):
                out[i] = append_missing(list(found[row]), cons[row])
        return out  # type: ignore[return-value]

    def translate(self, texts: list[str], beam: int | None = None) -> list[str]:
        """Translations of `texts`, in order (beam 1: greedy; default: this translator's `beam`). With `split`
        "sentences" (the default) a source of several sentences is translated a sentence at a time
        (`sensorium.runtime.text_windows`); "none" reads each source whole, cut to the window."""
        from sensorium.runtime.placeholders import restore
        from sensorium.runtime.text_windows import join, split_sentences

        if not texts:
            return []
        texts = list(texts)
        rows, separators = split_sentences(texts, keep=unsplittable) if self.split == "sentences" \
            else (texts, [[] for _ in texts])
        ids, originals, constraints = self.prepare(rows)
        decoded = self.decode_ids(ids, constraints, int(beam or self.beam))
        return join([restore(self.tokenizers.target.decode(d), o) for d, o in zip(decoded, originals)], separators)

    def predict_items(self, items: list[Item]) -> list[Record]:
        errors = [item.error or check_text(item.value) for item in items]
        done = iter(self.translate([item.value for item, error in zip(items, errors) if error is None]))
        return [error_record(item, error) if error is not None else ok_record(item, translation=next(done))
                for item, error in zip(items, errors)]
