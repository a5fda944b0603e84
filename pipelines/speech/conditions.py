"""Deterministic test conditions: a speech test set passed through reverberation, a telephone channel,
babble or pink noise, or recorded by hand (quiet before and after the speech), written as manifests
that every speech command reads.

    python -m sensorium.pipelines.speech.conditions --data builtin:speech@test --out DIR
        [--conditions reverb,telephone,babble10,pink10,lead,trimmed] [--limit N]

writes `DIR/<condition>/manifest.csv` (path, transcript) and one FLAC file per utterance, then
`sensorium evaluate --model MODEL --data DIR/<condition>/manifest.csv@all` measures a model on it.
Every random choice (room, talkers, noise) is drawn from a generator seeded by the condition's name
and the utterance's position, so the same command always writes the same audio.

Conditions:
- `reverb`: a synthetic room, RT60 drawn from 0.3-0.7 s, direct-to-reverberant ratio 0 dB;
- `telephone`: 300-3400 Hz band, 8 kHz, G.711 mu-law;
- `babble10`: four other utterances of the set (other voices) talking at once, 10 dB below;
- `pink10`: pink noise 10 dB below;
- `lead`: as a recording started and stopped by hand (push to talk, a browser's record button) comes:
  0.2-1.0 s before the speech and 0.2-0.5 s after it, with quiet room noise (pink, 40 dB below the
  speech) throughout. Models that learned where their training clips' speech starts fail here.
- `trimmed`: as a voice-activity detector or an editor cuts clips: the quiet after the speech cut to
  0-50 ms. Models that learned how their training clips end drop the last word here.
"""
from __future__ import annotations

import argparse
import hashlib
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from sensorium.pipelines.speech import channels
from sensorium.runtime.errors import DataError
from sensorium.runtime.segment import speech_end

log = logging.getLogger(__name__)

BABBLE_TALKERS = 4


def _rng(condition: str, index: int) -> np.random.Generator:
    seed = int.from_bytes(hashlib.sha256(condition.encode()).digest()[:4], "little")
    return np.random.default_rng([seed, index])


def _reverb(wave: np.ndarray, index: int, pool: list[np.ndarray]) -> np.ndarray:
    rng = _rng("reverb", index)
    return channels.reverberate(wave, channels.room_impulse_response(rng, float(rng.uniform(0.3, 0.7))))


def _telephone(wave: np.ndarray, index: int, pool: list[np.ndarray]) -> np.ndarray:
    return channels.telephone(wave)


def _babble10(wave: np.ndarray, index: int, pool: list[np.ndarray]) -> np.ndarray:
    rng = _rng("babble10", index)
    others = [i for i in range(len(pool)) if i != index]
    if not others:
        raise DataError("babble needs at least two utterances in the set")
    picks = rng.choice(others, size=min(BABBLE_TALKERS, len(others)), replace=False)
    return channels.mix(wave, channels.babble(wave.size, [pool[int(i)] for i in picks], rng), 10.0)


def _pink10(wave: np.ndarray, index: int, pool: list[np.ndarray]) -> np.ndarray:
    return channels.mix(wave, channels.colored_noise(wave.size, _rng("pink10", index), "pink"), 10.0)


LEAD_SECONDS = (0.2, 1.0)
TAIL_SECONDS = (0.2, 0.5)
ROOM_NOISE_DB = 40.0


def _lead(wave: np.ndarray, index: int, pool: list[np.ndarray]) -> np.ndarray:
    rng = _rng("lead", index)
    wave = np.asarray(wave, np.float32)
    before = int(rng.uniform(*LEAD_SECONDS) * channels.RATE)
    after = int(rng.uniform(*TAIL_SECONDS) * channels.RATE)
    padded = np.concatenate([np.zeros(before, np.float32), wave, np.zeros(after, np.float32)])  # (samples,)
    speech_rms = float(np.sqrt(np.mean(wave.astype(np.float64) ** 2))) if wave.size else 0.0
    room = channels.colored_noise(padded.size, rng, "pink") * speech_rms * 10 ** (-ROOM_NOISE_DB / 20)
    return (padded + room).astype(np.float32)


TRIMMED_SECONDS = (0.0, 0.05)


def _trimmed(wave: np.ndarray, index: int, pool: list[np.ndarray]) -> np.ndarray:
    wave = np.asarray(wave, np.float32)
    end = speech_end(wave, channels.RATE)
    keep = int(_rng("trimmed", index).uniform(*TRIMMED_SECONDS) * channels.RATE)
    return wave if end is None else wave[: min(wave.size, end + keep)]


CONDITIONS: dict[str, Callable[[np.ndarray, int, list[np.ndarray]], np.ndarray]] = {
    "reverb": _reverb, "telephone": _telephone, "babble10": _babble10, "pink10": _pink10,
    "lead": _lead, "trimmed": _trimmed,
}


def write_conditions(data: str, out: str | os.PathLike[str], conditions: list[str] | None = None, *,
                     data_dir: str | None = None, limit: int | None = None) -> dict[str, Path]:
    """Write each condition of `data` (a speech data spec) under `out`; returns {condition: manifest}."""
    import soundfile as sf

    from sensorium.pipelines.speech.config import SpeechDataConfig
    from sensorium.pipelines.speech.data import load_speech_split
    from sensorium.runtime.atomic import atomic_write_text

    names = list(conditions or CONDITIONS)
    unknown = sorted(set(names) - set(CONDITIONS))
    if unknown:
        raise DataError(f"unknown condition(s) {', '.join(unknown)} (known: {', '.join(CONDITIONS)})")
    split = load_speech_split(data, SpeechDataConfig(data_dir=data_dir), seed=42, default_split="test",
                              model_spec=None)
    waves, texts = split.waves[:limit], split.texts[:limit]
    written: dict[str, Path] = {}
    for name in names:
        folder = Path(out) / name
        folder.mkdir(parents=True, exist_ok=True)
        rows = ["path,transcript"]
        for i, (wave, text) in enumerate(zip(waves, texts)):
            audio = channels.peak_limit(CONDITIONS[name](wave, i, waves))
            file = f"{i:05d}.flac"
            tmp = folder / f".{file}.tmp"
            sf.write(tmp, audio, 16000, format="FLAC", subtype="PCM_16")
            os.replace(tmp, folder / file)
            rows.append(f"{file},{text}")
        written[name] = atomic_write_text(folder / "manifest.csv", "\n".join(rows) + "\n")
        log.info("%s: %d utterances in %s", name, len(waves), folder)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="builtin:speech@test", help="speech data spec (default builtin:speech@test)")
    parser.add_argument("--data-dir", default=None, help="TFDS data_dir for tfds: specs")
    parser.add_argument("--out", required=True, help="folder to write DIR/<condition>/manifest.csv into")
    parser.add_argument("--conditions", default=",".join(CONDITIONS), help=f"comma-separated ({', '.join(CONDITIONS)})")
    parser.add_argument("--limit", type=int, default=None, help="only the first N utterances")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        for name, path in write_conditions(args.data, args.out, [c for c in args.conditions.split(",") if c],
                                           data_dir=args.data_dir, limit=args.limit).items():
            print(f"{name}\t{path}")
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
