"""Speech data sources: (audio, transcript) pairs from a manifest, a LibriSpeech folder or TFDS.

- manifest: CSV/TSV with a header; an audio column (`path`, `audio`, `file`, `filename`) and a
  transcript column (`transcript`, `text`, `sentence`, `label`); relative paths resolve against the
  manifest's folder.
- LibriSpeech layout: a folder holding `SPEAKER/CHAPTER/SPEAKER-CHAPTER.trans.txt` files (lines
  `UTTERANCE-ID TRANSCRIPT`) next to `UTTERANCE-ID.flac` files, at any depth.
- `tfds:NAME` (librispeech, speech_commands, the corpus of `sensorium data speech`, ...): the first
  Audio feature and the first text or class-label feature.

Transcripts are normalised (`sensorium.runtime.transcripts`); items whose transcript is empty after
normalisation are skipped with a warning. Sources without splits of their own are split once,
seeded (80/10/10), like every other source.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sensorium.pipelines.common.dataspec import DataSpec, parse_spec
from sensorium.pipelines.common.sources import pick_column, read_manifest
from sensorium.pipelines.common.splits import stratified_split
from sensorium.runtime.errors import DataError
from sensorium.runtime.transcripts import normalize_transcript

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".opus")
AUDIO_COLUMNS = ("path", "audio", "file", "filename", "wav")
TEXT_COLUMNS = ("transcript", "text", "sentence", "label")


@dataclass
class Utterances:
    """Utterances before decoding: `audio` holds file paths or in-memory float32 waveforms (16 kHz)."""

    audio: list[Any]
    texts: list[str]  # normalised transcripts
    ids: list[str]
    extra: dict[str, list[Any]] = field(default_factory=dict)  # e.g. voice, engine

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, idx) -> Utterances:
        idx = [int(i) for i in idx]
        return Utterances([self.audio[i] for i in idx], [self.texts[i] for i in idx], [self.ids[i] for i in idx],
                          {k: [v[i] for i in idx] for k, v in self.extra.items()})


def _normalised(audio: list, raw_texts: list[str], ids: list[str], where: str,
                extra: dict[str, list] | None = None) -> Utterances:
    texts = [normalize_transcript(t) for t in raw_texts]
    keep = [i for i, t in enumerate(texts) if t]
    if len(keep) < len(texts):
        log.warning("%s: %d utterance(s) with an empty transcript after normalisation are skipped",
                    where, len(texts) - len(keep))
    if not keep:
        raise DataError(f"{where}: no utterance has a usable transcript")
    return Utterances(audio, texts, ids, extra or {}).take(keep)


def manifest_utterances(path: Path, *, audio_column: str | None = None, text_column: str | None = None) -> Utterances:
    """A CSV/TSV manifest of audio paths and transcripts."""
    columns, rows = read_manifest(path)
    ac = pick_column(columns, audio_column, AUDIO_COLUMNS, path, "audio path")
    tc = pick_column(columns, text_column, TEXT_COLUMNS, path, "transcript")
    audio, texts, ids = [], [], []
    for line, row in enumerate(rows, start=2):
        ref = (row.get(ac) or "").strip()
        if not ref:
            raise DataError(f"{path}:{line}: empty audio path")
        p = Path(ref).expanduser()
        audio.append(str(p if p.is_absolute() else path.parent / p))
        texts.append(row.get(tc) or "")
        ids.append(ref)
    return _normalised(audio, texts, ids, str(path))


def librispeech_utterances(root: Path) -> Utterances:
    """Every `*.trans.txt` below `root` and the audio files it names."""
    audio, texts, ids = [], [], []
    transcripts = sorted(root.rglob("*.trans.txt"))
    if not transcripts:
        raise DataError(f"{root}: no LibriSpeech *.trans.txt files (expected "
                        "SPEAKER/CHAPTER/SPEAKER-CHAPTER.trans.txt); for other folders use a CSV/TSV manifest of "
                        "path,transcript")
    for trans in transcripts:
        try:
            lines = trans.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"{trans}: unreadable transcript file ({exc})") from None
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            uid, _, text = line.strip().partition(" ")
            found = next((trans.parent / f"{uid}{s}" for s in AUDIO_SUFFIXES if (trans.parent / f"{uid}{s}").is_file()),
                         None)
            if found is None:
                raise DataError(f"{trans}:{number}: no audio file for utterance {uid}")
            audio.append(str(found))
            texts.append(text)
            ids.append(uid)
    return _normalised(audio, texts, ids, str(root))


def tfds_utterances(spec: DataSpec, split: str, *, data_dir: str | None, download: bool) -> Utterances:
    """The spec's TFDS split, decoded to float32 waveforms at 16 kHz."""
    from sensorium.pipelines.common.tfds_source import find_feature, load_tfds
    from sensorium.runtime.audio_io import resample

    ds, info = load_tfds(spec, split, data_dir=data_dir, download=download)
    audio_key = find_feature(info, ("Audio",), "audio")
    feature = info.features[audio_key]
    rate = int(getattr(feature, "sample_rate", None) or 16000)
    text_key, names = None, None
    for key, feat in info.features.items():
        kind = type(feat).__name__
        if kind == "Text" or (kind == "Tensor" and getattr(feat, "dtype", None) is not None
                              and "string" in str(feat.dtype) and key in TEXT_COLUMNS + ("speech",)):
            text_key = key
            break
        if kind == "ClassLabel" and text_key is None:
            text_key, names = key, feat.names
    if text_key is None:
        raise DataError(f"tfds:{info.name} has no transcript or label feature (features: {', '.join(info.features)})")
    audio, texts, ids, extra = [], [], [], {"voice": [], "engine": []}
    scale = 1.0
    for i, example in enumerate(ds.as_numpy_iterator()):
        wave = np.asarray(example[audio_key])
        if wave.dtype.kind == "i":
            scale = 1.0 / float(np.iinfo(wave.dtype).max + 1)
        wave = wave.astype(np.float32) * scale
        if wave.ndim == 2:
            wave = wave.mean(axis=-1)
        audio.append(resample(wave, rate, 16000) if rate != 16000 else wave)
        value = example[text_key]
        texts.append(names[int(value)] if names is not None else bytes(value).decode("utf-8", "replace"))
        uid = example.get("id", example.get("speaker_id", i))
        ids.append(uid.decode("utf-8", "replace") if isinstance(uid, bytes) else str(uid))
        for key in extra:
            v = example.get(key, b"")
            extra[key].append(v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v))
    if not audio:
        raise DataError(f"tfds:{info.name}: split {split} is empty")
    if names is not None:  # speech_commands: _silence_ / _unknown_ are not words
        texts = ["" if t.startswith("_") else t for t in texts]
    return _normalised(audio, texts, ids, f"tfds:{info.name}", {k: v for k, v in extra.items() if any(v)})


def load_utterances(spec_text: str, *, seed: int, default_split: str | None, data_dir: str | None = None,
                    download: bool = False, audio_column: str | None = None,
                    text_column: str | None = None) -> tuple[Utterances, str]:
    """(utterances, split name) for a data spec; sources without splits are split 80/10/10 with `seed`."""
    spec = parse_spec(spec_text)
    split = spec.split or default_split
    if spec.kind == "tfds":
        if spec.name == "sensorium_speech":
            from sensorium.pipelines.datasets import speech_corpus as _corpus  # noqa: F401  (registers the builder)
        items = tfds_utterances(spec, split or "train", data_dir=data_dir, download=download)
        return items, split or "train"
    if spec.kind == "builtin":
        from sensorium.pipelines.datasets.registry import get_builtin

        return get_builtin(spec.name, "speech").entry("load")(spec, default_split)
    path = Path(spec.name)
    items = (manifest_utterances(path, audio_column=audio_column, text_column=text_column) if spec.kind == "manifest"
             else librispeech_utterances(path))
    split = spec.chosen_split(default_split)
    if split is not None:
        parts = stratified_split(None, len(items), seed)
        items = items.take(parts[split])
    if spec.slice is not None:
        items = items.take(spec.slice.apply(list(range(len(items)))))
    if len(items) == 0:
        raise DataError(f"data spec '{spec.text}' selects no utterances (split {split or 'all'})")
    return items, split or "all"


def builtin_utterances(spec: DataSpec, default_split: str | None) -> tuple[Utterances, str]:
    """`builtin:speech[@SPLIT]`: the synthesised corpus that `sensorium data speech` built into the cache."""
    from sensorium.pipelines.datasets.speech_corpus import default_corpus_dir  # registers the TFDS builder

    if not (default_corpus_dir() / "sensorium_speech").is_dir():
        raise DataError(f"builtin:speech is not built yet in {default_corpus_dir()}; build it once with "
                        "`sensorium data speech` (needs espeak-ng and flite: apt-get install espeak-ng flite)")
    corpus = parse_spec(f"tfds:sensorium_speech@{spec.split or default_split or 'train'}"
                        + (str(spec.slice) if spec.slice else ""))
    items = tfds_utterances(corpus, corpus.split, data_dir=str(default_corpus_dir()), download=False)
    return items, corpus.split
