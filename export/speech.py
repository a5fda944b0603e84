"""The speech task's export adapter: variable-length waveforms in, CTC log-probabilities out.

Exported files take one mono 16 kHz float32 waveform of any length and return per-frame
log-probabilities over the CTC vocabulary (id 0 = blank, id i = ``alphabet[i - 1]``):

- SavedModel: ``serving_default(waveform: float32 [B, None]) -> {"log_probs": [B, T', V]}`` and
  ``transcribe(waveform: float32 [B, None]) -> {"text": string [B]}`` (greedy CTC decoding in the
  graph); ``assets/sensorium.json`` describes both.
- TFLite: input ``waveform`` float32 ``(1, N)`` (resize N at run time), output ``(1, T', V)``; builtin
  ops only; ``sensorium.json`` packed inside carries the alphabet and the framing needed to decode.

Quantisation, as measured on Sensorium's log-mel + conv + LSTM recognisers:

- ``float16`` stores weights as float16 and computes in float32: transcripts unchanged.
- ``int8`` is full-integer quantisation (int8 weights and activations, calibrated on training
  utterances) of everything behind the log-mel front end, which stays float32: an 8-bit power
  spectrum keeps only the bins within ~48 dB of the loudest one, and with the front end quantised
  transcripts collapse (measured: agreement with Keras fell to 0.45 on a small tone model, all
  hypotheses empty). Input and output stay float32.
- ``dynamic`` (dynamic-range) is not offered: its hybrid kernels quantise every matmul input to 8 bits
  at run time, the power spectrum included, with the same collapse, and the converter has no way to
  exclude the front end from it. ``int8`` gives the same int8 weights with a float front end.
"""
from __future__ import annotations

import json
import logging
import re
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sensorium.pipelines.common.artifacts import Artifact, load_task_model, run_config
from sensorium.runtime.atomic import atomic_path
from sensorium.runtime.errors import DataError, ModelError, UsageError
from sensorium.runtime.speech import SpeechRecognizer

log = logging.getLogger(__name__)

TASK = SpeechRecognizer.task
INPUT_NAME = "waveform"
OUTPUT_NAME = "log_probs"
FORMATS = ("saved_model", "tflite")
QUANTIZATIONS = ("none", "float16", "int8")
UNAVAILABLE = {
    "dynamic": "dynamic-range quantisation is not available for speech models: its hybrid kernels quantise "
               "the log-mel power spectrum to 8 bits and the transcripts collapse; use --quantize int8 "
               "(int8 weights and activations behind a float32 front end) or float16",
}
PARITY_UTTERANCES = 200  # parity runs on at most this many evaluation utterances
CALIBRATION_UTTERANCES = 100  # int8 calibrates on at most this many training utterances
MIN_CALIBRATION_UTTERANCES = 10
DECODING = ("CTC greedy (argmax per frame, merge repeats, drop blanks) or CTC prefix beam search over "
            "log_probs; id 0 is the blank, id i is alphabet[i - 1]; with `vocabulary`, a prefix beam search that "
            "spells only those words (sensorium.runtime.ctc.lexicon_beam_decode), scored with `language_model` "
            "(a word n-gram model as ARPA text, sensorium.runtime.ngram) where there is one")
FRAMES = ("frames = (samples - frame_length) // frame_step + 1 (0 below frame_length), then "
          "ceil(frames / 2) once per factor 2 of subsampling")


@dataclass
class SpeechItems:
    """Evaluation or calibration utterances: float32 16 kHz mono waveforms and their transcripts."""

    waves: list[np.ndarray]
    texts: list[str]
    ids: list[str]
    spec: str

    def __len__(self) -> int:
        return len(self.waves)


@dataclass
class SpeechExportSource:
    """What exporting a speech recogniser needs, read from a run directory or a .keras file."""

    artifact: Artifact
    model: Any
    info: dict[str, Any]

    task = TASK
    formats = FORMATS
    quantizations = QUANTIZATIONS
    unavailable = UNAVAILABLE

    @classmethod
    def load(cls, artifact: Artifact) -> SpeechExportSource:
        """Load the model and check it is a Sensorium speech recogniser with the standard alphabet."""
        from sensorium.runtime.ctc import VOCAB_SIZE
        from sensorium.runtime.transcripts import ALPHABET

        model, meta = load_task_model(artifact.keras_path, TASK)
        info = meta["info"]
        missing = [k for k in ("alphabet", "frame_length", "frame_step", "subsampling") if k not in info]
        if missing:
            raise ModelError(f"{artifact.path}: the model's metadata lacks {', '.join(missing)}")
        if info["alphabet"] != ALPHABET or int(model.outputs[0].shape[-1]) != VOCAB_SIZE:
            raise ModelError(f"{artifact.path}: the model's alphabet {info['alphabet']!r} is not Sensorium's "
                             f"{ALPHABET!r}; its transcripts cannot be checked")
        return cls(artifact, model, info)

    # --- description -------------------------------------------------------------------------
    @property
    def alphabet(self) -> str:
        return str(self.info["alphabet"])

    @property
    def vocab_size(self) -> int:
        return len(self.alphabet) + 1

    @property
    def sample_rate(self) -> int:
        return int(self.info.get("sample_rate", 16000))

    def frames(self, num_samples: int) -> int:
        """Output frames of the model for `num_samples` input samples."""
        from sensorium.runtime.speech import frames_from_info

        return frames_from_info(self.info, num_samples)

    def manifest(self, fmt: str, variant: str, version: str) -> dict[str, Any]:
        """sensorium.json carried inside the exported file (everything an edge runner needs to decode)."""
        batch = None if fmt == "saved_model" else 1
        quantization = {
            "none": "float32", "float16": "float16 weights, float32 compute",
            "int8": "int8 weights and activations behind a float32 log-mel front end; float32 input and output",
        }.get(variant, variant)
        out: dict[str, Any] = {
            "task": TASK, "format": fmt, "variant": variant, "quantization": quantization,
            "sensorium_version": version,
            "alphabet": self.alphabet, "blank": 0, "vocab_size": self.vocab_size,
            "sample_rate": self.sample_rate,
            "frame_length": int(self.info["frame_length"]), "frame_step": int(self.info["frame_step"]),
            "subsampling": int(self.info["subsampling"]), "frames": FRAMES,
            "bidirectional": bool(self.info.get("bidirectional", True)),
            "input": {"name": INPUT_NAME, "dtype": "float32", "shape": [batch, None],
                      "sample_rate": self.sample_rate, "channels": 1, "range": [-1.0, 1.0],
                      "meaning": "mono waveform at sample_rate, any length"
                                 + ("" if batch is None else " (resize the input tensor to (1, samples))")},
            "output": {"name": OUTPUT_NAME, "dtype": "float32", "shape": [batch, None, self.vocab_size],
                       "meaning": "per-frame log-softmax over the CTC vocabulary (blank + alphabet)"},
            "decoding": DECODING,
        }
        if self.info.get("vocabulary"):
            out["vocabulary"] = list(self.info["vocabulary"])  # the default lexicon of the edge decoder
        if self.info.get("language_model"):
            out["language_model"] = dict(self.info["language_model"])  # its word n-gram model (ARPA text)
        if self.info.get("lead_silence") is not None:
            out["lead_silence"] = float(self.info["lead_silence"])  # its training clips' leading quiet (s)
        if self.info.get("tail_silence") is not None:
            out["tail_silence"] = float(self.info["tail_silence"])  # their trailing quiet, median (s)
        if fmt == "saved_model":
            out["signatures"] = {
                "serving_default": "waveform float32 [B, None] -> log_probs float32 [B, frames, V]",
                "transcribe": "waveform float32 [B, None] -> text string [B] (greedy CTC; in a zero-padded "
                              "batch the padding is transcribed too: send one utterance per row of equal length "
                              "or batch size 1 for exact results)",
            }
        return out

    # --- data ----------------------------------------------------------------------------------
    def _data_config(self) -> tuple[Any, int]:
        """(SpeechDataConfig, seed) of the run; an empty spec for a bare .keras file."""
        from sensorium.pipelines.speech.config import SpeechConfig, SpeechDataConfig

        cfg = run_config(self.artifact, SpeechConfig)
        return (cfg.data, cfg.seed) if cfg is not None else (SpeechDataConfig(spec=""), 42)

    def _items(self, spec: str | None, split: str, limit: int, purpose: str) -> SpeechItems:
        """Utterances of `spec` (default: the run's source @`split`), at most `limit` (a seeded pick)."""
        from sensorium.pipelines.common.dataspec import parse_spec
        from sensorium.pipelines.speech.data import load_speech_split

        if spec and spec.endswith(".npy"):
            raise DataError(f"{spec}: speech {purpose} data is a data spec (e.g. manifest.csv@{split}), not a .npy")
        data_cfg, seed = self._data_config()
        if not spec:
            if not data_cfg.spec:
                raise UsageError(f"a .keras file carries no data spec: pass --{purpose}-data SPEC")
            run_spec = data_cfg.spec
            base = run_spec.rsplit("@", 1)[0] if parse_spec(run_spec).split else run_spec
            spec = f"{base}@{split}"  # the run's source, this split
        loaded = load_speech_split(spec, data_cfg, seed=seed, default_split=split, model_spec=None)
        waves, texts, ids = loaded.waves, loaded.texts, loaded.ids
        if len(waves) > limit:
            pick = np.sort(np.random.default_rng(seed).choice(len(waves), size=limit, replace=False))
            waves, texts, ids = ([seq[i] for i in pick] for seq in (waves, texts, ids))
            log.info("%s: %d of %d utterances used for %s", spec, limit, loaded.count, purpose)
        return SpeechItems(list(waves), list(texts), list(ids), spec)

    def evaluation_data(self, spec: str | None) -> SpeechItems:
        """Parity utterances: `spec` or the run's data @test (at most PARITY_UTTERANCES, seeded pick)."""
        return self._items(spec, "test", PARITY_UTTERANCES, "parity")

    def calibration_data(self, spec: str | None) -> list[np.ndarray]:
        """int8 calibration waveforms: `spec` or the run's data @train (at most CALIBRATION_UTTERANCES)."""
        items = self._items(spec, "train", CALIBRATION_UTTERANCES, "calibration")
        waves = [w for w in items.waves if self.frames(len(w)) > 0]
        if len(waves) < MIN_CALIBRATION_UTTERANCES:
            raise UsageError(f"int8 calibration needs at least {MIN_CALIBRATION_UTTERANCES} utterances; "
                             f"{items.spec} has {len(waves)}")
        return waves

    # --- running -----------------------------------------------------------------------------
    def per_utterance(self, run: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
        """Wrap `run` ((1, N) float32 -> (1, T', V)) as waveform (N,) -> (T', V); clips too short for
        one frame give (0, V) without calling it."""
        def one(wave: np.ndarray) -> np.ndarray:
            wave = np.asarray(wave, np.float32)
            if self.frames(len(wave)) == 0:
                return np.zeros((0, self.vocab_size), np.float32)
            return np.asarray(run(wave[None]))[0]
        return one

    def run_keras(self, items: SpeechItems) -> list[np.ndarray]:
        """Keras log-probabilities per utterance, each run alone (no padding: bidirectional layers see
        exactly the utterance, as the exported files do)."""
        import tensorflow as tf

        fn = tf.function(lambda x: self.model(x, training=False),
                         input_signature=[tf.TensorSpec((1, None), tf.float32)])
        one = self.per_utterance(lambda x: fn(tf.constant(x)).numpy())
        return [one(w) for w in items.waves]

    def saved_model_runner(self, path: str | Path) -> Callable[[np.ndarray], np.ndarray]:
        """Reload a written SavedModel with tf.saved_model.load: waveform (N,) -> (T', V)."""
        import tensorflow as tf

        fn = tf.saved_model.load(str(path)).signatures["serving_default"]
        return self.per_utterance(lambda x: fn(**{INPUT_NAME: tf.constant(x)})[OUTPUT_NAME].numpy())

    def tflite_runner(self, path: str | Path) -> tuple[Callable[[np.ndarray], np.ndarray], str]:
        """The edge runner on a written .tflite (no TensorFlow): waveform (N,) -> (T', V), runtime name."""
        from sensorium.runtime.speech import SpeechRecognizer

        edge = SpeechRecognizer.from_tflite(path)
        return self.per_utterance(edge.run_batch), edge.runtime

    def parity(self, variant: str, run: Callable[[np.ndarray], np.ndarray], items: SpeechItems,
               keras_outputs: list[np.ndarray], *, size_bytes: int, path: str, latency_runs: int) -> dict[str, Any]:
        """The parity row of one exported variant (transcripts, WER/CER, log-prob difference, latency).

        Latency is the median over the utterances themselves (each a different length), so
        `latency_runs` (repeated calls on one fixed-shape sample, for images) does not apply."""
        from sensorium.export.parity import sequence_parity_row

        return sequence_parity_row(TASK, variant, run, items.waves, items.texts, keras_outputs,
                                   size_bytes=size_bytes, path=path, audio_rate=self.sample_rate)

    # --- writing -----------------------------------------------------------------------------
    def write_saved_model(self, out: Path, version: str) -> Path:
        """Write the SavedModel (serving_default + transcribe, assets/sensorium.json) at `out`, atomically."""
        import keras
        import tensorflow as tf

        model = self.model
        table = tf.constant([""] + list(self.alphabet))  # id -> character; the blank is ""

        def serve(waveform):
            return {OUTPUT_NAME: model(waveform, training=False)}

        def transcribe(waveform):
            ids = tf.argmax(model(waveform, training=False), axis=-1, output_type=tf.int32)  # (B, T')
            previous = tf.pad(ids[:, :-1], [[0, 0], [1, 0]], constant_values=-1)
            keep = tf.logical_and(tf.not_equal(ids, previous), tf.not_equal(ids, 0))  # merge repeats, drop blanks
            chars = tf.where(keep, tf.gather(table, ids), "")
            return {"text": tf.strings.reduce_join(chars, axis=-1)}

        archive = keras.export.ExportArchive()
        archive.track(model)
        spec = [tf.TensorSpec((None, None), tf.float32, name=INPUT_NAME)]
        archive.add_endpoint("serving_default", tf.function(serve), input_signature=spec)
        archive.add_endpoint("transcribe", tf.function(transcribe), input_signature=spec)
        out = Path(out)
        with atomic_path(out) as tmp:
            archive.write_out(str(tmp), verbose=False)
            assets = tmp / "assets"
            assets.mkdir(exist_ok=True)
            meta = self.manifest("saved_model", "none", version)
            (assets / "sensorium.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        log.debug("SavedModel written to %s", out)
        return out

    def tflite_files(self, variant: str, version: str) -> dict[str, bytes]:
        """Associated files packed into the .tflite."""
        return {"sensorium.json": json.dumps(self.manifest("tflite", variant, version), indent=2).encode()}

    def to_tflite(self, variant: str, calibration: list[np.ndarray] | None = None) -> bytes:
        """Convert to a `.tflite` flatbuffer taking waveform float32 (1, N), builtin ops only.

        Raises ModelError naming the ops TFLite builtins cannot express, UsageError for `dynamic`.
        """
        import keras
        import tensorflow as tf

        from sensorium.export.tflite import _builtin_error
        from sensorium.runtime.errors import native_stderr_silenced

        if variant in self.unavailable:
            raise UsageError(self.unavailable[variant])
        if variant not in self.quantizations:
            raise UsageError(f"--quantize {variant} is not available for speech; use: {', '.join(self.quantizations)}")
        model = self.model

        def serve(waveform):
            return {OUTPUT_NAME: model(waveform, training=False)}

        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint("serving_default", tf.function(serve),
                             input_signature=[tf.TensorSpec((1, None), tf.float32, name=INPUT_NAME)])
        with tempfile.TemporaryDirectory(prefix="sensorium-tflite-") as tmp:
            archive.write_out(tmp, verbose=False)
            try:
                with native_stderr_silenced():  # the converter prints its MLIR diagnostics natively
                    if variant == "int8":
                        return self._int8(tmp, calibration or [])
                    converter = self._converter(tmp)
                    if variant == "float16":
                        converter.optimizations = [tf.lite.Optimize.DEFAULT]
                        converter.target_spec.supported_types = [tf.float16]
                    return converter.convert()
            except (ModelError, UsageError):
                raise
            except Exception as exc:  # ConverterError lists the ops that have no builtin kernel
                raise ModelError(_builtin_error(exc)) from None

    @staticmethod
    def _converter(saved_model_dir: str) -> Any:
        """A builtin-ops TFLiteConverter for the conversion SavedModel."""
        import tensorflow as tf

        converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        return converter

    def _front_end_tensors(self, float_model: bytes) -> list[str]:
        """Names of the log-mel front end's tensors in the converted float model."""
        from sensorium.models.blocks.audio import LogMelSpectrogram
        from sensorium.runtime.tflite import interpreter_class

        layers = [layer.name for layer in self.model.layers if isinstance(layer, LogMelSpectrogram)]
        if not layers:
            raise ModelError(f"{self.artifact.path}: the model has no LogMelSpectrogram front end")
        pattern = re.compile("|".join(rf"(^|/){re.escape(name)}(_\d+)?/" for name in layers))
        Interpreter, _ = interpreter_class()
        names = [t["name"] for t in Interpreter(model_content=float_model).get_tensor_details()]
        return [n for n in names if pattern.search(n)]

    def _int8(self, saved_model_dir: str, calibration: list[np.ndarray]) -> bytes:
        """Full-integer quantisation behind a float32 front end (selective quantisation: the front end's
        nodes, and SPLIT, which the quantiser otherwise moves to int8 inside it, are denylisted)."""
        import tensorflow as tf

        if len(calibration) < MIN_CALIBRATION_UTTERANCES:
            raise ModelError(f"int8 needs at least {MIN_CALIBRATION_UTTERANCES} calibration utterances, "
                             f"got {len(calibration)}")
        front_end = self._front_end_tensors(self._converter(saved_model_dir).convert())

        def samples():
            return ([np.asarray(w, np.float32)[None]] for w in calibration)

        converter = self._converter(saved_model_dir)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = samples
        options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=front_end,
                                                                denylisted_ops=["SPLIT"])
        started = time.perf_counter()
        with warnings.catch_warnings():  # the debugger builds a tf.lite.Interpreter (deprecated) for itself
            warnings.simplefilter("ignore")
            debugger = tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=samples,
                                                                 debug_options=options)
            flat = debugger.get_nondebug_quantized_model()
        log.info("int8: calibrated on %d utterances, %d front-end tensors kept float32 (%.1f s)",
                 len(calibration), len(front_end), time.perf_counter() - started)
        return flat
