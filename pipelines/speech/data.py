"""Speech training data: decoded 16 kHz waveforms + CTC label ids, batched by similar length.

Batches are `(waveforms (B, S) float32 zero-padded, targets (B, 1 + L) int32)` where
`targets[:, 0]` is each utterance's number of model output frames (so CTC ignores the padding) and
`targets[:, 1:]` its label ids padded with 0 (see `models.speech_recognizer.ctc_loss`).
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sensorium.models.speech import SpeechRecognizerSpec, output_frames
from sensorium.pipelines.speech.config import SpeechDataConfig
from sensorium.pipelines.speech.sources import Utterances, load_utterances
from sensorium.runtime.ctc import encode_text
from sensorium.runtime.errors import DataError

log = logging.getLogger(__name__)

SORT_WINDOW = 50  # batches whose utterances are sorted by length together (less padding, still shuffled)


@dataclass
class SpeechSplit:
    """One split, decoded: waveforms, normalised transcripts, ids, and the items that failed."""

    split: str
    waves: list[np.ndarray]
    texts: list[str]
    ids: list[str]
    failures: list[tuple[str, str]] = field(default_factory=list)  # (id, one-line reason)

    @property
    def count(self) -> int:
        return len(self.ids)

    @property
    def seconds(self) -> float:
        return float(sum(len(w) for w in self.waves) / 16000.0)

    def targets(self, spec: SpeechRecognizerSpec) -> list[np.ndarray]:
        """Per utterance: [output frames, label ids...] (int32)."""
        return [np.asarray([output_frames(spec, len(w)), *encode_text(t)], np.int32)
                for w, t in zip(self.waves, self.texts)]

    def batches(self, batch_size: int, targets: list[np.ndarray], *, order_seed: list[int] | None = None,
                augment: Any = None, spec: SpeechRecognizerSpec | None = None
                ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Padded batches of (waveforms, `targets`); with `order_seed`, shuffled and length-sorted
        within windows of SORT_WINDOW batches, in a shuffled batch order; otherwise in order.

        `augment` (`pipelines.speech.augment.Augmenter`, with `spec` and `order_seed`) passes each
        waveform through a random channel chain drawn from `order_seed`; a target's frame count
        follows its waveform's new length."""
        order = np.arange(self.count)
        starts = list(range(0, self.count, batch_size))
        rng = None
        if order_seed is not None:
            rng = np.random.default_rng(order_seed)
            lengths = np.asarray([len(w) for w in self.waves])
            order = rng.permutation(self.count)
            window = batch_size * SORT_WINDOW
            order = np.concatenate([chunk[np.argsort(lengths[chunk], kind="stable")]
                                    for chunk in np.array_split(order, max(1, -(-len(order) // window)))])
            rng.shuffle(starts)
        for start in starts:
            idx = order[start : start + batch_size]
            waves, batch_targets = [self.waves[i] for i in idx], [targets[i] for i in idx]
            if augment and rng is not None and spec is not None:
                waves, batch_targets = self._augmented(waves, batch_targets, augment, rng, spec)
            yield pad_batch(waves, batch_targets)

    @staticmethod
    def _augmented(waves: list[np.ndarray], targets: list[np.ndarray], augment: Any, rng: np.random.Generator,
                   spec: SpeechRecognizerSpec) -> tuple[list[np.ndarray], list[np.ndarray]]:
        out_waves, out_targets = [], []
        for wave, target in zip(waves, targets):
            labels = target[1:]
            needed = len(labels) + int(np.sum(labels[1:] == labels[:-1]))  # CTC: a blank between repeats
            min_samples = _samples_for_frames(spec, needed)
            new = augment(wave, rng, min_samples)
            frames = output_frames(spec, len(new))
            if frames < needed:  # cannot happen unless a lever shortened the audio: keep the original
                new, frames = wave, int(target[0])
            out_waves.append(new)
            out_targets.append(np.concatenate([[frames], labels]).astype(np.int32))
        return out_waves, out_targets

    def dataset(self, batch_size: int, spec: SpeechRecognizerSpec, *, training: bool = False, seed: int = 0,
                augment: Any = None):
        """The batches as a tf.data.Dataset; the generator runs again every epoch (in training with
        a new order, and new augmentation with `augment`, each time)."""
        import itertools

        import tensorflow as tf

        targets = self.targets(spec)  # once, not per epoch
        epochs = itertools.count(1)

        def generate():
            return self.batches(batch_size, targets, order_seed=[seed, next(epochs)] if training else None,
                                augment=augment if training else None, spec=spec)

        signature = (tf.TensorSpec((None, None), tf.float32), tf.TensorSpec((None, None), tf.int32))
        ds = tf.data.Dataset.from_generator(generate, output_signature=signature)
        ds = ds.apply(tf.data.experimental.assert_cardinality(-(-self.count // batch_size)))
        return ds.prefetch(2)


def _samples_for_frames(spec: SpeechRecognizerSpec, frames: int) -> int:
    """The fewest samples that give at least `frames` model output frames."""
    log_mel_frames = frames * 2 ** len(spec.conv_channels)
    return spec.frame_length + max(0, log_mel_frames - 1) * spec.frame_step


def pad_batch(waves: list[np.ndarray], targets: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Zero-pad waveforms to (B, max S) and targets to (B, max 1 + L)."""
    x = np.zeros((len(waves), max(len(w) for w in waves)), np.float32)
    y = np.zeros((len(targets), max(len(t) for t in targets)), np.int32)
    for i, (w, t) in enumerate(zip(waves, targets)):
        x[i, : len(w)] = w
        y[i, : len(t)] = t
    return x, y


def decode_utterances(items: Utterances, split: str, *, spec: SpeechRecognizerSpec | None,
                      max_seconds: float | None, lead_silence: float | None = None) -> SpeechSplit:
    """Read every utterance's audio; unreadable, too long, or too short for its transcript (CTC
    needs at least one output frame per label, two between repeated letters) are recorded, not fatal.
    With `lead_silence`, leading quiet beyond that many seconds is cut (`segment.cut_leading_quiet`), as
    the trained model's recogniser then does at inference."""
    from sensorium.runtime.audio_io import load_audio
    from sensorium.runtime.segment import cut_leading_quiet

    waves, texts, ids, failures = [], [], [], []
    for audio, text, uid in zip(items.audio, items.texts, items.ids):
        try:
            if isinstance(audio, np.ndarray):
                wave = audio.astype(np.float32, copy=False)
                if max_seconds and len(wave) > max_seconds * 16000:
                    raise DataError(f"{uid}: {len(wave) / 16000:.1f} s is longer than {max_seconds:g} s")
            else:
                wave = load_audio(audio, max_seconds=max_seconds)
            if lead_silence is not None:
                wave = cut_leading_quiet(wave, 16000, margin=lead_silence)
            if spec is not None:
                repeats = sum(1 for a, b in zip(text, text[1:]) if a == b)
                if output_frames(spec, len(wave)) < len(text) + repeats:
                    raise DataError(f"{uid}: {len(wave) / 16000:.2f} s is too short for its {len(text)}-character "
                                    "transcript")
        except DataError as exc:
            failures.append((uid, str(exc)))
            continue
        waves.append(wave)
        texts.append(text)
        ids.append(uid)
    if failures:
        log.warning("%s: %d of %d utterance(s) skipped (first: %s)", split, len(failures), len(items.ids),
                    failures[0][1])
    if not ids:
        raise DataError(f"{split}: no usable utterance ({failures[0][1] if failures else 'empty'})")
    return SpeechSplit(split, waves, texts, ids, failures)


def typical_tail(waves: list[np.ndarray], limit: int = 5000) -> float | None:
    """The median trailing quiet (`segment.trailing_quiet`, seconds, to 10 ms) of up to `limit` clips
    evenly spaced through `waves`; None when none has a loud frame. Models learn how their training
    clips end, so recognisers top shorter endings up to it (`runtime.speech`, tail_silence)."""
    from sensorium.runtime.segment import trailing_quiet

    step = max(1, len(waves) // max(1, limit))
    tails = [t for t in (trailing_quiet(w, 16000) for w in waves[::step]) if t is not None]
    return round(float(np.median(tails)), 2) if tails else None


def load_speech_split(spec_text: str, cfg: SpeechDataConfig, *, seed: int, default_split: str | None,
                      model_spec: SpeechRecognizerSpec | None) -> SpeechSplit:
    """A data spec's split, decoded."""
    items, split = load_utterances(spec_text, seed=seed, default_split=default_split, data_dir=cfg.data_dir,
                                   download=cfg.download, audio_column=cfg.audio_column, text_column=cfg.text_column)
    return decode_utterances(items, split, spec=model_spec, max_seconds=cfg.max_seconds,
                             lead_silence=cfg.lead_silence)


def load_train_validation(cfg: SpeechDataConfig, *, seed: int, model_spec: SpeechRecognizerSpec
                          ) -> tuple[SpeechSplit, SpeechSplit]:
    """Training split (`@train` unless the spec names one) and validation split."""
    from sensorium.pipelines.common.dataspec import parse_spec

    spec = parse_spec(cfg.spec)
    train = load_speech_split(cfg.spec, cfg, seed=seed, default_split="train", model_spec=model_spec)
    validation_spec = cfg.validation_spec or f"{spec.source}@validation"
    validation = load_speech_split(validation_spec, cfg, seed=seed, default_split="validation", model_spec=model_spec)
    return train, validation


def feature_statistics(waves: list[np.ndarray], spec: SpeechRecognizerSpec, limit: int = 400
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Per-mel-bin mean and variance of the log-mel features of (up to `limit`) training utterances."""
    from sensorium.models.blocks.audio import LogMelSpectrogram

    layer = LogMelSpectrogram(sample_rate=spec.sample_rate, frame_length=spec.frame_length,
                              frame_step=spec.frame_step, fft_length=spec.fft_length, num_mel_bins=spec.num_mel_bins)
    feats = [np.asarray(layer(w[None]))[0] for w in waves[:limit] if len(w) >= spec.frame_length]
    if not feats:
        raise DataError("no training utterance is long enough for one spectrogram frame")
    stacked = np.concatenate(feats, axis=0)  # (frames, bins)
    return stacked.mean(0), np.maximum(stacked.var(0), 1e-6)


def describe(split: SpeechSplit) -> dict[str, Any]:
    return {"count": split.count, "hours": round(split.seconds / 3600, 3), "skipped": len(split.failures)}
