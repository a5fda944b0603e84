#!/usr/bin/env python
"""Speech robustness table: WER of one or more models on several test sets, open-vocabulary greedy and
with vocabulary decoding, from the same model outputs; real-time factor of the whole path.

    python tests/benchmarks/speech_robustness.py --model assets/models/speech \\
        --data builtin:speech@test --data DIR/reverb/manifest.csv@all ... \\
        [--vocabulary FILE] [--lm FILE|model|none] [--lm-weight W] [--lead-silence S|none|model]
        [--tail-silence S|none|model] [--data-dir DIR] [--limit N] [--json OUT]

`--model` may repeat (run directories, .keras or .tflite files); each `--data` is a speech data spec
(`--data-dir` is the TFDS data_dir of tfds: specs). The vocabulary is the model's own words unless
`--vocabulary FILE` is given (models trained before 0.8 carry none); the word language model is the
model's own unless `--lm` says otherwise (models trained before 0.9 carry none), and where one is
used the vocabulary WER without it is reported too. Make the condition sets with
`python -m sensorium.pipelines.speech.conditions`. RTF = (model + decoding time) / audio duration,
one utterance at a time after a warm-up, on this machine's CPU.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True)
    parser.add_argument("--data", action="append", required=True)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--vocabulary", default="model", help="FILE, model (default) or none")
    parser.add_argument("--lm", default="model", help="FILE (ARPA or sentences), model (default) or none")
    parser.add_argument("--lm-weight", type=float, default=None)
    parser.add_argument("--lead-silence", default="model",
                        help="seconds of leading quiet kept, none, or model (default: as the model was trained)")
    parser.add_argument("--tail-silence", default="model",
                        help="least seconds of trailing quiet, none, or model (default: as the model records)")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--json", default=None, help="also write the table as JSON here")
    args = parser.parse_args()

    from sensorium.pipelines.speech.config import SpeechDataConfig
    from sensorium.pipelines.speech.data import load_speech_split
    from sensorium.pipelines.speech.evaluate import error_rates
    from sensorium.pipelines.speech.predict import load

    sets = {}
    for spec in args.data:
        split = load_speech_split(spec, SpeechDataConfig(data_dir=args.data_dir), seed=42, default_split="test",
                                  model_spec=None)
        sets[spec] = (split.waves[: args.limit], split.texts[: args.limit])
    rows = []
    for model in args.model:
        recognizer = load(model).configure(vocabulary=args.vocabulary, language_model=args.lm,
                                           lead_silence=args.lead_silence, tail_silence=args.tail_silence,
                                           **({"lm_weight": args.lm_weight} if args.lm_weight is not None else {}))
        for spec, (waves, refs) in sets.items():
            started = time.perf_counter()
            scores = recognizer.log_probs(waves)
            model_s = time.perf_counter() - started
            greedy = error_rates(refs, recognizer.decode(scores, beam=1, vocabulary="none"))
            started = time.perf_counter()
            constrained = recognizer.decode(scores) if recognizer.lexicon is not None else None
            decode_s = time.perf_counter() - started
            with_lm = constrained is not None and recognizer.lm is not None and recognizer.lm_weight > 0
            plain = recognizer.decode(scores, lm_weight=0.0) if with_lm else None
            audio_s = sum(len(w) for w in waves) / 16000
            row = {"model": model, "data": spec, "utterances": len(waves), "greedy_wer": round(greedy["wer"], 4),
                   "vocabulary_wer": round(error_rates(refs, constrained)["wer"], 4) if constrained else None,
                   "vocabulary_wer_without_lm": round(error_rates(refs, plain)["wer"], 4) if plain else None,
                   "decoding": recognizer.decoding, "rtf": round((model_s + decode_s) / audio_s, 5)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    print()
    print("| model | data | utterances | WER greedy | WER vocabulary | WER vocabulary, no LM | RTF |")
    print("|---|---|---|---|---|---|---|")

    def pct(x):
        return f"{100 * x:.1f}%" if x is not None else "-"

    for r in rows:
        print(f"| {r['model']} | {r['data']} | {r['utterances']} | {pct(r['greedy_wer'])} | {pct(r['vocabulary_wer'])} "
              f"| {pct(r['vocabulary_wer_without_lm'])} | {r['rtf']:.4f} |")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
