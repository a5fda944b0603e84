"""The speech recogniser of the runtime: audio in, text with timed segments out.

Inputs are audio files (any format `sensorium.runtime.audio_io` reads, any rate and channel count),
encoded audio bytes, or waveforms: a float array at 16 kHz, or `(array, sample_rate)`. A long
recording is read ten minutes at a time, cut at silences into segments of at most `max_segment`
seconds (`sensorium.runtime.segment`), transcribed in batches of similar length and joined, so hours
of audio need bounded memory. Records: `{"input", "ok", "text", "duration", "segments": [{"start",
"end", "text"}]}`.

Example::

    asr = SpeechRecognizer.load()              # the bundled English model, its .tflite
    asr("talk.wav")["text"]
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from sensorium.runtime.errors import InputError, ModelError
from sensorium.runtime.predictor import Item, Predictor, Record, error_record, length_batches, ok_record
from sensorium.runtime.transcripts import ALPHABET

if TYPE_CHECKING:
    from sensorium.runtime.ngram import WordNgramLM
    from sensorium.runtime.vocabulary import Vocabulary

RATE = 16000
MIN_SECONDS = 0.25  # shorter clips are padded with silence to this
WINDOW_SECONDS = 600.0  # a long file is decoded 10 minutes at a time
MAX_SECONDS = 12 * 3600.0  # longer inputs are refused
LEXICON_BEAM = 16  # the least beam of vocabulary-constrained decoding
# Leading quiet longer than `lead_silence` seconds can be cut before recognition (`segment.speech_onset`):
# models learn where their training clips' speech starts. At 0.08 s, engine hold-out (issue 22): flite
# greedy WER 67.1 -> 50.6%, vocabulary 47.9 -> 33.8%, the training engine's voices and builtin:speech
# unchanged; but models trained on espeak-ng's unshifted clips, cut or not, have a fragile first word when
# speech starts 20-80 ms into the clip (a browser recording of "four two seven" gave "call two seven"). So
# the default, "model", cuts as the model's training data was cut (`data.lead_silence`, in its info), or not.
LEAD_SILENCE = "model"
# Clips that end less than `tail_silence` seconds after their last loud frame get digital silence appended
# (`segment.pad_trailing_quiet`): models also learn how their training clips end. Engine hold-out (issue 22),
# the bundled recipe: espeak-ng's clips end on 0.26 s of quiet (median), flite's on 0.10 s; topped up to
# 0.25 s, flite went from 40.0% to 30.7% greedy and from 22.8% to 16.2% with the vocabulary (mostly flite's
# last word, no longer dropped). The default, "model", tops up to the median trailing quiet of the
# model's training clips (`info["tail_silence"]`, recorded by `train speech`), or leaves clips as they are.
TAIL_SILENCE = "model"
MIN_CONFIDENCE = 0.5  # `ctc.speech_confidence` below this: not speech (noise), transcribed as ""
LM_WEIGHT = 0.5  # weight of a word language model's ln P in vocabulary decoding (shallow fusion)


def frames_from_info(info: dict[str, Any], num_samples: int) -> int:
    """Output frames for `num_samples` from a model's framing (frame length/step, subsampling)."""
    frames = max(0, (int(num_samples) - int(info.get("frame_length", 400))) // int(info.get("frame_step", 160)) + 1)
    factor = int(info.get("subsampling", 4))
    while factor > 1:
        frames, factor = -(-frames // 2), factor // 2
    return frames


@dataclass
class SpeechRecognizer(Predictor):
    """`run_batch(waveforms (B, S) float32) -> log-probabilities (B, T', V)` with the model's framing
    (`info`: frame_length, frame_step, subsampling, alphabet)."""

    run_batch: Callable[[np.ndarray], np.ndarray]
    info: dict[str, Any]
    source: str
    max_batch: int | None = None  # 1 for .tflite files (their input is (1, samples))
    runtime: str = "keras"
    beam: int = 1
    max_segment: float = 15.0
    batch_size: int = 16
    vocabulary: Any = "model"  # "model", "none", a file path, a list of words or a Vocabulary
    min_confidence: float = MIN_CONFIDENCE  # segments the model is less sure are speech give ""
    language_model: Any = "model"  # "model", "none", an ARPA or sentence file, or a WordNgramLM
    lm_weight: float = LM_WEIGHT
    lead_silence: float | str | None = LEAD_SILENCE  # seconds of leading quiet kept; "none": all; "model"
    tail_silence: float | str | None = TAIL_SILENCE  # least seconds of trailing quiet; "none": as is; "model"
    alphabet: str = field(init=False)
    lexicon: Vocabulary | None = field(init=False, default=None)
    lm: WordNgramLM | None = field(init=False, default=None)

    task: ClassVar[str] = "speech"
    keras_backend: ClassVar[str] = "sensorium.pipelines.speech.predict:load"
    options: ClassVar[dict[str, Any]] = {"beam": 1, "max_segment": 15.0, "batch_size": 16, "vocabulary": "model",
                                         "min_confidence": MIN_CONFIDENCE, "language_model": "model",
                                         "lm_weight": LM_WEIGHT, "lead_silence": LEAD_SILENCE,
                                         "tail_silence": TAIL_SILENCE}
    chunk_size: ClassVar[int] = 1  # a file is its own unit of work (it is cut into segments)

    def __post_init__(self) -> None:
        self.alphabet = str(self.info.get("alphabet", ALPHABET))
        self.lm = self.resolve_language_model(self.language_model)
        self.lexicon = self.resolve_vocabulary(self.vocabulary)

    @property
    def model_words(self) -> list[str]:
        """The words of the model's training transcripts (its default vocabulary; [] if it has none)."""
        words = self.info.get("vocabulary") or []
        return [str(w) for w in words] if isinstance(words, (list, tuple)) else []

    def resolve_vocabulary(self, vocabulary: Any) -> Vocabulary | None:
        """The lexicon that `vocabulary` names: "model" (the model's own words, or none when it has
        none), "none"/None (open vocabulary), a file path, a list of words or a Vocabulary."""
        from sensorium.runtime.vocabulary import Vocabulary

        if vocabulary is None or (isinstance(vocabulary, str) and vocabulary.lower() in ("none", "open")):
            return None
        if isinstance(vocabulary, Vocabulary):
            if vocabulary.alphabet != self.alphabet:
                raise InputError("the vocabulary was built for another alphabet than the model's")
            return vocabulary
        if isinstance(vocabulary, str) and vocabulary == "model":
            words = self.model_words
            if not words:
                return None
            try:
                model_words = Vocabulary.from_words(words, self.alphabet, source=f"{self.source}: its vocabulary")
            except InputError as exc:
                raise ModelError(str(exc)) from None
            extra = self.lm.words if self.lm is not None else []
            if not set(extra) - set(model_words.words):
                return model_words
            return Vocabulary.from_words([*model_words.words, *extra], self.alphabet, source=self.lm.source)
        if isinstance(vocabulary, (str, Path)):
            return Vocabulary.from_file(vocabulary, self.alphabet)
        if isinstance(vocabulary, (list, tuple, set, frozenset)):
            return Vocabulary.from_words(sorted(map(str, vocabulary)), self.alphabet)
        raise InputError("vocabulary must be 'model', 'none', a file or a list of words, got "
                         f"{type(vocabulary).__name__}")

    def resolve_language_model(self, language_model: Any) -> WordNgramLM | None:
        """The word n-gram model that `language_model` names: "model" (the one the model carries, or
        none), "none"/None, an ARPA file or a text file of sentences (trained as a trigram model),
        or a WordNgramLM. It scores words in vocabulary decoding only; with `language_model` from
        a file and the model's own vocabulary, the language model's words may be spelled too."""
        from sensorium.runtime.ngram import WordNgramLM

        if language_model is None or (isinstance(language_model, str) and language_model.lower() == "none"):
            return None
        if isinstance(language_model, WordNgramLM):
            return language_model
        if isinstance(language_model, str) and language_model == "model":
            stored = self.info.get("language_model")
            if not stored:
                return None
            try:
                return WordNgramLM.from_dict(stored, source=f"{self.source}: its language model")
            except InputError as exc:
                raise ModelError(str(exc)) from None
        if isinstance(language_model, (str, Path)):
            return WordNgramLM.from_file(language_model)
        raise InputError("language_model must be 'model', 'none' or a file (ARPA, or sentences one per line), got "
                         f"{type(language_model).__name__}")

    @classmethod
    def from_tflite(cls, path: str | Path, *, num_threads: int | None = None) -> SpeechRecognizer:
        """A speech `.tflite` on this runtime (no TensorFlow); alphabet and framing from its sensorium.json."""
        from sensorium.runtime.tflite import EdgeModel

        model = EdgeModel(path, num_threads=num_threads)
        model.require_task(cls.task)
        manifest = model.manifest
        try:
            info: dict[str, Any] = {k: int(manifest[k]) for k in ("frame_length", "frame_step", "subsampling")}
            info["alphabet"] = str(manifest["alphabet"])
            if isinstance(manifest.get("vocabulary"), list):
                info["vocabulary"] = [str(w) for w in manifest["vocabulary"]]
            if isinstance(manifest.get("language_model"), dict):
                info["language_model"] = manifest["language_model"]
            for key in ("lead_silence", "tail_silence"):
                if manifest.get(key) is not None:
                    info[key] = float(manifest[key])
            blank, rate = int(manifest.get("blank", 0)), int(manifest.get("sample_rate", RATE))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{path}: sensorium.json lacks the speech fields ({exc})") from None
        if blank != 0:
            raise ModelError(f"{path}: blank id {blank} is not supported (Sensorium models use 0)")
        if rate != RATE:
            raise ModelError(f"{path}: the model takes {rate} Hz audio; this runtime feeds {RATE} Hz")
        if len(model.input["shape_signature"]) != 2:
            raise ModelError(f"{path}: expected a (1, samples) waveform input, the model takes "
                             f"{tuple(model.input['shape_signature'])}")
        return cls(model, info, str(path), max_batch=1, runtime=model.runtime)

    def configure(self, **options: Any) -> SpeechRecognizer:
        from sensorium.runtime.errors import UsageError

        super().configure(**options)
        if int(self.beam) < 1:
            raise UsageError("beam must be at least 1")
        if not 1.0 <= float(self.max_segment) <= 60.0:
            raise UsageError("max_segment must be between 1 and 60 seconds")
        if int(self.batch_size) < 1:
            raise UsageError("batch_size must be at least 1")
        if not 0.0 <= float(self.min_confidence) <= 1.0:
            raise UsageError("min_confidence must be between 0 and 1")
        if not 0.0 <= float(self.lm_weight) <= 10.0:
            raise UsageError("lm_weight must be between 0 and 10")
        _model_seconds(self.lead_silence, self.info, "lead_silence")
        _model_seconds(self.tail_silence, self.info, "tail_silence")
        if "language_model" in options:
            self.lm = self.resolve_language_model(self.language_model)
        if "vocabulary" in options or "language_model" in options:
            self.lexicon = self.resolve_vocabulary(self.vocabulary)
        return self

    # --- the model --------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return len(self.alphabet) + 1

    def frames(self, num_samples: int) -> int:
        return frames_from_info(self.info, num_samples)

    def log_probs(self, waves: list[np.ndarray], batch_size: int | None = None) -> list[np.ndarray]:
        """Per utterance (T', V) log-probabilities, each cut to its own frames; utterances batched by
        similar length and zero-padded. Leading quiet beyond `lead_silence` seconds is cut first
        (`segment.cut_leading_quiet`), trailing quiet is topped up to `tail_silence` seconds with
        silence (`segment.pad_trailing_quiet`), and clips shorter than MIN_SECONDS are padded with silence."""
        from sensorium.runtime.segment import cut_leading_quiet, pad_trailing_quiet

        minimum = int(MIN_SECONDS * RATE)
        waves = [np.asarray(w, np.float32) for w in waves]
        lead = _model_seconds(self.lead_silence, self.info, "lead_silence")
        if lead is not None:
            waves = [cut_leading_quiet(w, RATE, margin=lead) for w in waves]
        tail = _model_seconds(self.tail_silence, self.info, "tail_silence")
        if tail is not None:
            waves = [pad_trailing_quiet(w, RATE, tail=tail) for w in waves]
        waves = [w if len(w) >= minimum else np.pad(w, (0, minimum - len(w))) for w in waves]
        out: list[np.ndarray | None] = [None] * len(waves)
        size = min(batch_size or self.batch_size, self.max_batch or batch_size or self.batch_size)
        for idx in length_batches([len(w) for w in waves], size):
            x = np.zeros((len(idx), max(len(waves[i]) for i in idx)), np.float32)  # (B, S)
            for row, i in enumerate(idx):
                x[row, : len(waves[i])] = waves[i]
            scores = self.run_batch(x)  # (B, T', V)
            for row, i in enumerate(idx):
                out[i] = scores[row, : self.frames(len(waves[i]))]
        return out  # type: ignore[return-value]

    @property
    def decoding(self) -> str:
        """How transcripts are decoded, in words (for reports and records)."""
        if self.lexicon is not None:
            lm = (f", {self.lm.order}-gram language model (weight {float(self.lm_weight):g})"
                  if self.lm is not None and float(self.lm_weight) > 0 else "")
            return f"vocabulary of {len(self.lexicon)} words{lm}, beam {max(int(self.beam), LEXICON_BEAM)}"
        return "open vocabulary, " + ("greedy" if int(self.beam) <= 1 else f"beam {int(self.beam)}")

    def transcribe(self, waves: list[np.ndarray], beam: int | None = None, batch_size: int | None = None) -> list[str]:
        """Texts of 16 kHz utterances (see `decode`)."""
        return self.decode(self.log_probs(waves, batch_size), beam=beam)

    def decode(self, scores: list[np.ndarray], beam: int | None = None, vocabulary: Any = None,
               lm_weight: float | None = None) -> list[str]:
        """Texts of per-utterance log-probabilities. With a vocabulary (`vocabulary`, else the
        configured `lexicon`): prefix beam search spelling only its words, beam at least LEXICON_BEAM,
        with the word language model (`lm`) weighted by `lm_weight` (default: the configured one; 0
        turns it off). Open vocabulary: greedy CTC decoding, or prefix beam search with beam > 1. An
        utterance whose `speech_confidence` is below `min_confidence` is "" (0 turns the check off)."""
        from sensorium.runtime.ctc import beam_search_decode, greedy_decode, lexicon_beam_decode, speech_confidence

        beam = int(beam or self.beam)
        lexicon = self.lexicon if vocabulary is None else self.resolve_vocabulary(vocabulary)
        weight = float(self.lm_weight if lm_weight is None else lm_weight)
        lm = self.lm if weight > 0 else None

        def one(lp: np.ndarray) -> str:
            if speech_confidence(lp) < float(self.min_confidence):
                return ""  # noise the model half-mistakes for speech
            if lexicon is not None:
                return lexicon_beam_decode(lp, lexicon, beam=max(beam, LEXICON_BEAM), language_model=lm,
                                           lm_weight=weight)
            if beam <= 1:
                return greedy_decode(lp, alphabet=self.alphabet)
            return beam_search_decode(lp, beam=beam, alphabet=self.alphabet)

        return [one(lp) for lp in scores]

    # --- inputs ---------------------------------------------------------------------------------
    def is_single(self, inputs: Any) -> bool:
        if isinstance(inputs, tuple) and len(inputs) == 2 and isinstance(inputs[0], np.ndarray):
            return True  # (waveform, sample_rate)
        return not isinstance(inputs, (list, tuple))

    def predict_items(self, items: list[Item]) -> list[Record]:
        out = []
        for item in items:
            if item.error:
                out.append(error_record(item, item.error))
                continue
            try:
                out.append(ok_record(item, **self.transcribe_input(item)))
            except InputError as exc:
                out.append(error_record(item, str(exc)))
        return out

    def transcribe_input(self, item: Item) -> dict[str, Any]:
        """{"text", "duration", "segments"} of one input (InputError if it cannot be used)."""
        from sensorium.runtime.audio_io import AUDIO_EXTENSIONS, decode_audio_bytes, resample

        value = item.value
        if isinstance(value, (str, Path)):
            from sensorium.runtime.paths import input_error

            error = input_error(str(value), "audio files (" + ", ".join(sorted(AUDIO_EXTENSIONS)) + ")")
            if error:
                raise InputError(error)
            return self.transcribe_file(value)
        if isinstance(value, (bytes, bytearray, memoryview)):
            wave = decode_audio_bytes(bytes(value), sample_rate=RATE, max_seconds=MAX_SECONDS,
                                      name=f"input {item.name}")
            return self.transcribe_wave(wave)
        rate = RATE
        if isinstance(value, tuple) and len(value) == 2:
            value, rate = value
        wave = np.asarray(value)
        if wave.ndim == 2 and 1 in wave.shape:
            wave = wave.reshape(-1)
        if wave.ndim == 2:  # (samples, channels): mix down
            wave = wave.mean(axis=1)
        if wave.ndim != 1 or wave.dtype.kind not in "fiu" or wave.size == 0:
            raise InputError(f"input {item.name}: expected a mono waveform (samples,) of floats in [-1, 1], got "
                             f"{wave.dtype} {wave.shape}")
        try:
            rate = int(rate)
        except (TypeError, ValueError):
            raise InputError(f"input {item.name}: the sample rate must be an integer, got {rate!r}") from None
        if not 1000 <= rate <= 384000:
            raise InputError(f"input {item.name}: sample rate {rate} Hz is out of range (1000 to 384000)")
        if wave.size / rate > MAX_SECONDS:
            raise InputError(f"input {item.name}: {wave.size / rate / 3600:.1f} h is longer than the "
                             f"{MAX_SECONDS / 3600:.0f} h limit")
        wave = wave.astype(np.float32) / (np.iinfo(wave.dtype).max if wave.dtype.kind in "iu" else 1.0)
        if not np.all(np.isfinite(wave)):
            raise InputError(f"input {item.name}: the waveform holds NaN or infinite samples")
        if rate != RATE:
            wave = resample(np.clip(wave, -1.0, 1.0), rate, RATE, name=f"input {item.name}")
        return self.transcribe_wave(wave)

    def transcribe_wave(self, wave: np.ndarray, offset: float = 0.0) -> dict[str, Any]:
        """One 16 kHz waveform -> {"text", "duration", "segments"} (cut at silences)."""
        segments = self._segments(wave, offset)
        return {"text": " ".join(s["text"] for s in segments if s["text"]), "duration": round(len(wave) / RATE, 3),
                "segments": segments}

    def _segments(self, wave: np.ndarray, offset: float, pieces: list[Any] | None = None) -> list[dict[str, Any]]:
        from sensorium.runtime.segment import split_at_silences

        pieces = split_at_silences(wave, RATE, max_seconds=float(self.max_segment)) if pieces is None else pieces
        texts = self.transcribe([wave[p.start : p.end] for p in pieces])
        out = []
        for piece, text in zip(pieces, texts):
            start, end = piece.seconds(RATE)
            out.append({"start": round(offset + start, 3), "end": round(offset + end, 3), "text": text})
        return out

    def transcribe_file(self, path: str | Path) -> dict[str, Any]:
        """{"text", "duration", "segments"} of one file, read in windows (InputError if unreadable)."""
        from sensorium.runtime.audio_io import audio_duration, load_audio
        from sensorium.runtime.segment import split_at_silences

        duration = audio_duration(path)
        if duration <= 0:
            raise InputError(f"{path}: empty audio file (no samples)")
        if duration > MAX_SECONDS:
            raise InputError(f"{path}: {duration / 3600:.1f} h is longer than the {MAX_SECONDS / 3600:.0f} h "
                             "limit; split it first")
        segments: list[dict[str, Any]] = []
        offset = 0.0
        while True:
            wave = load_audio(path, offset_seconds=offset, duration_seconds=WINDOW_SECONDS)
            if len(wave) == 0:
                break
            pieces = split_at_silences(wave, RATE, max_seconds=float(self.max_segment))
            last_window = offset + len(wave) / RATE >= duration - 1e-3
            carry = None
            if not last_window and len(pieces) > 1:  # the last piece may run on into the next window
                carry = pieces[-1].start
                pieces = pieces[:-1]
            segments += self._segments(wave, offset, pieces)
            if last_window:
                break
            offset += (carry if carry is not None else len(wave)) / RATE
        text = " ".join(s["text"] for s in segments if s["text"])
        return {"text": text, "duration": round(duration, 3), "segments": segments}


def _model_seconds(value: Any, info: dict[str, Any], name: str) -> float | None:
    """The `lead_silence` or `tail_silence` option (`name`) as seconds in [0, 10], or None for
    "none"/"keep" (clips as they come); "model" is the model's own (`info[name]`, how its training clips
    were cut or ended), or None when it records none."""
    from sensorium.runtime.errors import UsageError

    if isinstance(value, str) and value.strip().lower() == "model":
        stored = info.get(name)
        if stored is None:
            return None
        try:
            return _seconds(stored, name)
        except UsageError:
            raise ModelError(f"the model's {name} {stored!r} is not seconds between 0 and 10") from None
    return _seconds(value, name)


def _seconds(value: Any, name: str) -> float | None:
    """`value` as seconds in [0, 10], or None for None/"none"/"keep"; a UsageError naming `name` else."""
    from sensorium.runtime.errors import UsageError

    if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "keep")):
        return None
    try:
        seconds = float(value) if not isinstance(value, bool) else float("nan")
    except (TypeError, ValueError):
        seconds = float("nan")
    if not 0.0 <= seconds <= 10.0:
        raise UsageError(f"{name} must be seconds between 0 and 10, none or model, got {value!r}")
    return seconds
