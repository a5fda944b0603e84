"""Offline speech synthesis with Debian's `espeak-ng` and `flite`, plus the mixing helpers that turn
their output into training audio (noise at a given SNR, resampling to 16 kHz, peak normalisation).

A `Voice` names an engine and one of its voices: `espeak-ng:en-us+f3` (an espeak-ng English voice
with a voice variant) or `flite:slt`. `synthesize` runs the engine in a subprocess into a temporary
WAV file and returns float32 mono samples in [-1, 1] with the engine's sample rate. Nothing here
needs TensorFlow.
"""
from __future__ import annotations

import functools
import logging
import math
import os
import re
import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from typing import Literal

import numpy as np

from sensorium.runtime.errors import DataError

log = logging.getLogger(__name__)

Engine = Literal["espeak-ng", "flite"]
NoiseColour = Literal["white", "pink", "brown"]

ENGINES: tuple[str, ...] = ("espeak-ng", "flite")
APT_PACKAGE = {"espeak-ng": "espeak-ng", "flite": "flite"}
TARGET_SAMPLE_RATE = 16_000
DEFAULT_TIMEOUT_S = 30.0

# espeak-ng voice variants used with every English espeak-ng voice ("en-us+m3"): male 1-7, female 1-4.
ESPEAK_VARIANTS: tuple[str, ...] = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4")
# The other espeak-ng 1.51 variants (file names under espeak-ng-data/voices/!v), for corpora that want far
# more varied voices (`sensorium_speech/engine_holdout_varied`): Klatt synthesis (klatt-klatt5 and the
# Klatt-based adam, benjamin, david, edward, edward2, robosoft*, UniRobot, announcer), the human-named
# and character voices, whisper, robot and effect voices. All of them say the words: the bundled model
# transcribes them with 0-39 % WER (whisperf the worst). Left out because they give no distinct voice:
# `fast` and `Mr serious` (its file name has a space; espeak-ng falls back to the plain voice for
# both: the same samples) and `caleb` and `klatt6` (the same samples as `klatt`).
ESPEAK_EXTRA_VARIANTS: tuple[str, ...] = (
    "m8", "f5", "klatt", "klatt2", "klatt3", "klatt4", "klatt5",
    "adam", "Alex", "Alicia", "Andrea", "Andy", "Annie", "AnxiousAndy", "anika", "anikaRobot", "announcer",
    "antonio", "aunty", "belinda", "benjamin", "boris", "croak", "david", "Demonic", "Denis", "Diogo", "ed",
    "edward", "edward2", "Gene", "Gene2", "grandma", "grandpa", "gustave", "Henrique", "Hugo", "iven", "iven2",
    "iven3", "iven4", "Jacky", "john", "kaukovalta", "Lee", "linda", "marcelo", "Marco", "Mario", "max",
    "Michael", "michel", "miguel", "Mike", "Nguyen", "norbert", "pablo", "paul", "pedro", "quincy",
    "RicishayMax", "RicishayMax2", "RicishayMax3", "rob", "robert", "robosoft", "robosoft2", "robosoft3",
    "robosoft4", "robosoft5", "robosoft6", "robosoft7", "robosoft8", "sandro", "shelby", "steph", "steph2",
    "steph3", "Storm", "travis", "Tweaky", "UniRobot", "victor", "whisper", "whisperf", "zac",
)
# flite's `awb_time` is a limited-domain voice that can only say clock times: never used.
FLITE_EXCLUDED = frozenset({"awb_time"})
ESPEAK_DEFAULT_WPM = 175
# espeak-ng's -p (0-99, default 50) moves f0 roughly exponentially: about +1 % per step.
ESPEAK_PITCH_STEPS_PER_LN = 105.0


@dataclass(frozen=True, order=True)
class Voice:
    """One synthetic voice: `engine` ("espeak-ng" or "flite") and the engine's voice `name`."""

    engine: str
    name: str

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise DataError(f"unknown speech engine '{self.engine}' (expected one of: {', '.join(ENGINES)})")
        if not self.name or self.name.startswith("-") or any(c.isspace() for c in self.name):
            raise DataError(f"invalid {self.engine} voice name {self.name!r}")

    @property
    def id(self) -> str:
        """`engine:name`, e.g. `espeak-ng:en-us+f3`; the form used in corpora and configs."""
        return f"{self.engine}:{self.name}"

    @classmethod
    def parse(cls, text: str) -> Voice:
        """The voice written as `engine:name` (the inverse of `id`)."""
        engine, sep, name = text.partition(":")
        if not sep:
            raise DataError(f"voice {text!r} is not of the form ENGINE:NAME (e.g. espeak-ng:en-us+f3, flite:slt)")
        return cls(engine, name)

    def __str__(self) -> str:
        return self.id


# === Engines ===
def engine_path(engine: str) -> str:
    """The engine's executable on PATH, or a one-line DataError naming the apt package to install."""
    if engine not in ENGINES:
        raise DataError(f"unknown speech engine '{engine}' (expected one of: {', '.join(ENGINES)})")
    path = shutil.which(engine)
    if path is None:
        raise DataError(f"{engine} is not installed (not on PATH): apt-get install {APT_PACKAGE[engine]}")
    return path


def engine_available(engine: str) -> bool:
    """Whether the engine's executable is on PATH."""
    return shutil.which(engine) is not None


def engine_version(engine: str) -> str:
    """The engine's version line ("eSpeak NG text-to-speech: 1.51", "flite-2.2-current ..."), or ""."""
    try:  # flite prints its version and exits with status 1
        proc = subprocess.run([engine_path(engine), "--version"], capture_output=True, text=True,
                              timeout=DEFAULT_TIMEOUT_S, check=False)
    except (DataError, OSError, subprocess.TimeoutExpired):
        return ""
    out = proc.stdout + "\n" + proc.stderr
    for line in out.splitlines():
        line = line.strip()
        if engine == "flite" and line.startswith("version:"):
            return line.removeprefix("version:").strip()
        if engine == "espeak-ng" and line:
            return re.sub(r"\s+Data at:.*$", "", line)
    return ""


def available_voices(engines: tuple[str, ...] = ENGINES, *,
                     extra_espeak_variants: tuple[str, ...] = ()) -> list[Voice]:
    """Every English voice installed here, sorted: each espeak-ng English voice (MBROLA voices,
    which need extra packages, excluded) with each variant in ESPEAK_VARIANTS, and in
    `extra_espeak_variants` (e.g. ESPEAK_EXTRA_VARIANTS), that is installed, and every flite voice
    except the limited-domain `awb_time`. Engines that are not installed add none."""
    voices: list[Voice] = []
    if "espeak-ng" in engines and engine_available("espeak-ng"):
        variants = set(_espeak_variants())
        used = [v for v in dict.fromkeys(ESPEAK_VARIANTS + tuple(extra_espeak_variants)) if v in variants]
        for base in _espeak_english_voices():
            voices += [Voice("espeak-ng", f"{base}+{variant}") for variant in used]
    if "flite" in engines and engine_available("flite"):
        voices += [Voice("flite", name) for name in _flite_voices() if name not in FLITE_EXCLUDED]
    return sorted(set(voices))


@functools.cache
def _espeak_english_voices() -> tuple[str, ...]:
    """Language codes of espeak-ng's own English voices (from `espeak-ng --voices=en`)."""
    out = _run([engine_path("espeak-ng"), "--voices=en"], timeout=DEFAULT_TIMEOUT_S, what="espeak-ng --voices=en")
    names: list[str] = []
    for line in out.splitlines()[1:]:
        cols = line.split()
        if len(cols) < 5:
            continue
        language, file = cols[1], cols[4]
        if not re.fullmatch(r"en(-[a-z0-9]+)*", language) or file.startswith(("mb/", "!v/")):
            continue  # MBROLA voices need the mbrola package and voice data; !v/ are variants
        if language not in names:
            names.append(language)
    return tuple(names)


@functools.cache
def _espeak_variants() -> tuple[str, ...]:
    """The installed espeak-ng voice variants ("m1", "f3", "klatt", ...)."""
    out = _run([engine_path("espeak-ng"), "--voices=variant"], timeout=DEFAULT_TIMEOUT_S,
               what="espeak-ng --voices=variant")
    found: list[str] = []
    for line in out.splitlines()[1:]:
        m = re.search(r"\s!v/(\S+)", line)
        if m:
            found.append(m.group(1))
    return tuple(found)


@functools.cache
def _flite_voices() -> tuple[str, ...]:
    """The voices compiled into flite (from `flite -lv`)."""
    out = _run([engine_path("flite"), "-lv"], timeout=DEFAULT_TIMEOUT_S, what="flite -lv")
    _, _, listed = out.partition("Voices available:")
    return tuple(listed.split())


def _run(cmd: list[str], *, timeout: float, what: str, stdin: str | None = None) -> str:
    """Run `cmd`, returning its stdout; one-line DataError on a timeout or a non-zero exit."""
    try:
        proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise DataError(f"{what} timed out after {timeout:g} s") from None
    except OSError as exc:
        raise DataError(f"{what} could not be started ({exc.strerror or exc})") from None
    if proc.returncode != 0:
        detail = next((ln.strip() for ln in proc.stderr.splitlines() if ln.strip()), f"exit status {proc.returncode}")
        raise DataError(f"{what} failed: {detail}")
    return proc.stdout


# === Synthesis ===
def synthesize(voice: Voice | str, text: str, *, rate: float = 1.0, pitch: float = 1.0,
               timeout: float = DEFAULT_TIMEOUT_S) -> tuple[np.ndarray, int]:
    """Speak `text` with `voice`: (float32 mono samples in [-1, 1], sample rate of the engine).

    `rate` scales the speaking rate (1.0 = the voice's default, 1.2 = 20 % faster) and `pitch` the
    fundamental frequency (1.0 = default); flite's `rms` voice ignores the pitch setting.
    """
    if isinstance(voice, str):
        voice = Voice.parse(voice)
    text = " ".join(text.split())
    if not text:
        raise DataError(f"{voice.id}: nothing to say (empty text)")
    if not (0.3 <= rate <= 3.0):
        raise DataError(f"rate {rate:g} is outside 0.3..3.0")
    if not (0.5 <= pitch <= 2.0):
        raise DataError(f"pitch {pitch:g} is outside 0.5..2.0")
    exe = engine_path(voice.engine)
    fd, wav_path = tempfile.mkstemp(prefix="sensorium-tts-", suffix=".wav")
    os.close(fd)
    try:
        if voice.engine == "espeak-ng":
            wpm = max(80, round(ESPEAK_DEFAULT_WPM * rate))
            p = int(np.clip(round(50 + ESPEAK_PITCH_STEPS_PER_LN * math.log(pitch)), 0, 99))
            cmd = [exe, "-v", voice.name, "-s", str(wpm), "-p", str(p), "-w", wav_path, "--stdin"]
            _run(cmd, timeout=timeout, what=f"espeak-ng voice {voice.name}", stdin=text)
        else:
            cmd = [exe, "-voice", voice.name, "--setf", f"duration_stretch={1.0 / rate:.4f}",
                   "--setf", f"f0_shift={pitch:.4f}", "-o", wav_path, "-t", text]
            _run(cmd, timeout=timeout, what=f"flite voice {voice.name}")
        audio, sr = read_wav(wav_path)
    finally:
        try:
            os.unlink(wav_path)
        except OSError:
            pass
    if audio.size == 0:
        raise DataError(f"{voice.id} produced no audio for {text!r} (is the voice installed?)")
    log.debug("synthesised %r with %s: %.2f s at %d Hz", text, voice.id, audio.size / sr, sr)
    return audio, sr


def read_wav(path: str | os.PathLike[str]) -> tuple[np.ndarray, int]:
    """A 16-bit PCM WAV file as (float32 mono samples in [-1, 1], sample rate); channels averaged."""
    try:
        with wave.open(os.fspath(path), "rb") as w:
            sr, channels, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
            frames = w.readframes(w.getnframes())
    except (wave.Error, EOFError, OSError) as exc:
        raise DataError(f"cannot read WAV {path}: {exc}") from None
    if width != 2:
        raise DataError(f"WAV {path} has {8 * width}-bit samples; expected 16-bit PCM")
    audio = np.frombuffer(frames, dtype="<i2").astype(np.float32) / 32768.0
    if channels > 1:
        audio = audio.reshape(-1, channels).mean(axis=1)
    return audio, sr


# === Mixing ===
def noise(n: int, rng: np.random.Generator, colour: NoiseColour = "white") -> np.ndarray:
    """`n` samples of zero-mean unit-RMS noise: white (flat), pink (1/f power) or brown (1/f^2)."""
    if colour not in ("white", "pink", "brown"):
        raise DataError(f"unknown noise colour '{colour}' (expected white, pink or brown)")
    white = rng.standard_normal(n)
    if colour != "white" and n > 1:
        spectrum = np.fft.rfft(white)
        freqs = np.fft.rfftfreq(n)
        freqs[0] = freqs[1]  # no division by zero; the DC bin is removed below
        spectrum /= freqs ** (0.5 if colour == "pink" else 1.0)
        spectrum[0] = 0.0
        white = np.fft.irfft(spectrum, n)
    white -= white.mean()
    rms = float(np.sqrt(np.mean(white ** 2))) if n else 0.0
    return (white / rms if rms > 0 else white).astype(np.float32)


def add_noise(audio: np.ndarray, snr_db: float, rng: np.random.Generator,
              colour: NoiseColour = "white") -> np.ndarray:
    """`audio` plus noise of `colour` at `snr_db` dB below the audio's mean power (over the whole
    utterance); an infinite SNR returns the audio unchanged. float32 out, not clipped."""
    audio = np.asarray(audio, dtype=np.float32)
    if math.isinf(snr_db) and snr_db > 0:
        return audio.copy()
    if math.isnan(snr_db):
        raise DataError("snr_db is NaN")
    power = float(np.mean(audio.astype(np.float64) ** 2)) if audio.size else 0.0
    if power == 0.0:
        return audio.copy()
    scale = math.sqrt(power / (10.0 ** (snr_db / 10.0)))
    return (audio + scale * noise(audio.size, rng, colour)).astype(np.float32)


def resample(audio: np.ndarray, orig_sr: int, target_sr: int = TARGET_SAMPLE_RATE) -> np.ndarray:
    """`audio` resampled from `orig_sr` to `target_sr` Hz (the loader's resampler: soxr HQ); float32."""
    from sensorium.runtime.audio_io import resample as resample_audio

    audio = np.asarray(audio, dtype=np.float32)
    return audio if orig_sr == target_sr else resample_audio(audio, orig_sr, target_sr)


def peak_normalize(audio: np.ndarray, peak: float = 0.9) -> np.ndarray:
    """`audio` scaled so that its largest absolute sample is `peak`; silence is returned as is."""
    audio = np.asarray(audio, dtype=np.float32)
    top = float(np.max(np.abs(audio))) if audio.size else 0.0
    return audio * np.float32(peak / top) if top > 0 else audio.copy()


def to_int16(audio: np.ndarray) -> np.ndarray:
    """float audio in [-1, 1] as int16 PCM (clipped)."""
    return np.clip(np.round(np.asarray(audio, dtype=np.float32) * 32767.0), -32768, 32767).astype(np.int16)
