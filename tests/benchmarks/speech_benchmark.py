#!/usr/bin/env python
"""Speech quality and speed: WER/CER and real-time factor of our model (Keras and TFLite) next to
pocketsphinx (PyPI, its bundled US English model) on the same held-out audio, same normalisation.

    python tests/benchmarks/speech_benchmark.py [--model assets/models/speech] [--data builtin:speech@test]
        [--tflite FILE] [--limit 600] [--no-pocketsphinx]

Real-time factor = processing time / audio duration, single-threaded calls one utterance at a time
(what a device does), after one warm-up call.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def _rtf(fn, waves) -> tuple[list, float]:
    fn(waves[0])  # warm-up
    start = time.perf_counter()
    out = [fn(w) for w in waves]
    return out, (time.perf_counter() - start) / (sum(len(w) for w in waves) / 16000)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(REPO / "assets/models/speech"))
    parser.add_argument("--data", default="builtin:speech@test")
    parser.add_argument("--data-dir", default=None, help="TFDS data_dir for tfds: specs")
    parser.add_argument("--tflite", default=None, help="default: MODEL/exports/model-float32.tflite if present")
    parser.add_argument("--limit", type=int, default=600)
    parser.add_argument("--no-pocketsphinx", action="store_true")
    parser.add_argument("--workdir", default="/tmp/sensorium-speech-benchmark")
    parser.add_argument("--vocabulary", default=None,
                        help="our decoding vocabulary and the peer's grammar words: a FILE, model (our model's own "
                             "words) or none (open vocabulary; the grammar then holds the training split's words)")
    args = parser.parse_args()

    from sensorium.pipelines.speech.config import SpeechDataConfig
    from sensorium.pipelines.speech.data import load_speech_split
    from sensorium.pipelines.speech.evaluate import error_rates
    from sensorium.pipelines.speech.predict import load
    from sensorium.runtime.speech import frames_from_info
    from sensorium.runtime.transcripts import normalize_transcript

    split = load_speech_split(args.data, SpeechDataConfig(data_dir=args.data_dir), seed=42, default_split="test",
                              model_spec=None)
    waves, refs = split.waves[: args.limit], split.texts[: args.limit]
    hours = sum(len(w) for w in waves) / 16000 / 3600
    print(f"data: {args.data}, {len(waves)} utterances, {hours * 60:.1f} min of audio")
    rows = {}
    recognizer = load(args.model).configure(**({"vocabulary": args.vocabulary} if args.vocabulary else {}))
    hyps, rtf = _rtf(lambda w: recognizer.transcribe([w])[0], waves)
    rows[f"sensorium keras ({recognizer.decoding})"] = {**error_rates(refs, hyps), "rtf": rtf}
    tflite = Path(args.tflite) if args.tflite else Path(args.model) / "exports" / "model-float32.tflite"
    if tflite.is_file():
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=str(tflite), num_threads=1)
        inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]

        def run_tflite(wave):
            interpreter.resize_tensor_input(inp["index"], (1, len(wave)))
            interpreter.allocate_tensors()
            interpreter.set_tensor(inp["index"], wave[None].astype(np.float32))
            interpreter.invoke()
            scores = interpreter.get_tensor(out["index"])[0][: frames_from_info(recognizer.info, len(wave))]
            return recognizer.decode([scores])[0]

        hyps, rtf = _rtf(run_tflite, waves)
        rows[f"sensorium tflite ({tflite.name}, {recognizer.decoding})"] = {**error_rates(refs, hyps), "rtf": rtf}
    if not args.no_pocketsphinx:
        try:
            from pocketsphinx import Decoder
        except ImportError:
            print("pocketsphinx is not installed (pip install pocketsphinx): skipped")
        else:
            decoder = Decoder(samprate=16000, loglevel="FATAL")

            def run_sphinx(wave):
                decoder.start_utt()
                decoder.process_raw((np.clip(wave, -1, 1) * 32767).astype(np.int16).tobytes(), full_utt=True)
                decoder.end_utt()
                hyp = decoder.hyp()
                return normalize_transcript(hyp.hypstr if hyp else "")

            hyps, rtf = _rtf(run_sphinx, waves)
            rows["pocketsphinx 5 (en-us, generic LM)"] = {**error_rates(refs, hyps), "rtf": rtf}
            # the fairer comparison: pocketsphinx restricted to the training vocabulary (a JSGF grammar
            # of any sequence of the words seen in training transcripts)
            if recognizer.lexicon is not None:
                vocabulary = list(recognizer.lexicon.words)
            else:
                train_spec = args.data.rsplit("@", 1)[0] + "@train[:3000]"
                train = load_speech_split(train_spec, SpeechDataConfig(data_dir=args.data_dir), seed=42,
                                          default_split="train", model_spec=None)
                vocabulary = sorted({w for t in train.texts for w in t.split()})
            grammar = Path(args.workdir) / "vocabulary.gram"
            grammar.parent.mkdir(parents=True, exist_ok=True)
            grammar.write_text("#JSGF V1.0;\ngrammar vocabulary;\npublic <utterance> = ( "
                               + " | ".join(vocabulary) + " )+ ;\n")
            # wip: pocketsphinx's word insertion probability. At its default (0.65) a word loop fills noise
            # with short words ("it", "off", "up") and does worse than the generic LM; 1e-4 was best on
            # the espeak-ng validation voices of the engine hold-out (0.65: 100.8%, 1e-2: 66.7%, 1e-4: 62.1%).
            decoder = Decoder(samprate=16000, loglevel="FATAL", jsgf=str(grammar), wip=1e-4)
            hyps, rtf = _rtf(run_sphinx, waves)
            rows[f"pocketsphinx 5 ({len(vocabulary)}-word grammar)"] = {**error_rates(refs, hyps), "rtf": rtf}
    print(f"{'system':38s} {'WER':>7s} {'CER':>7s} {'exact':>7s} {'RTF':>7s}")
    for name, r in rows.items():
        print(f"{name:38s} {r['wer']:7.2%} {r['cer']:7.2%} {r['sentence_accuracy']:7.2%} {r['rtf']:7.4f}")
    print(json.dumps({k: {m: round(v, 5) for m, v in r.items() if isinstance(v, float)} for k, r in rows.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
