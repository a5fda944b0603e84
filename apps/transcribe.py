"""`transcribe AUDIO... [--model MODEL] [--beam N] [--vocabulary FILE|model|none] [--lm FILE|model|none]
[--lm-weight W] [--lead-silence S|none|model] [--tail-silence S|none|model] [--format txt|json|srt|vtt]
[--output-dir DIR] [--json]`."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sensorium.apps.cli import (
    add_common_options,
    add_model_options,
    emit_results,
    load_predictor,
    standalone_main,
)

DESCRIPTION = "Transcribe speech (audio files, folders or glob patterns) with a speech model."
EPILOG = """examples:
  transcribe talk.wav                         the text, with the bundled English model
  transcribe talk.wav --format srt > talk.srt subtitles with segment times
  transcribe recordings/ --format vtt --output-dir subs/     one .vtt per recording
  transcribe a.flac b.ogg --json              text, duration and segments per file
  transcribe order.wav --vocabulary menu.txt  spell only the words of menu.txt
  transcribe talk.wav --vocabulary none       open vocabulary (letter by letter)
  transcribe order.wav --lm orders.txt        prefer word sequences like the sentences of orders.txt
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="AUDIO",
                        help="audio files (wav, flac, ogg, mp3, ...; any rate, any channels), folders or globs")
    add_model_options(parser, "speech", "the bundled English model (its .tflite; trained on synthetic voices)")
    parser.add_argument("--beam", type=int, default=1, metavar="N", help="CTC beam width (default 1: greedy decoding)")
    parser.add_argument("--vocabulary", default="model", metavar="FILE|model|none",
                        help="spell only these words: a UTF-8 file of words (whitespace-separated, '#' comment "
                             "lines), 'model' (default: the words the model was trained on, when it carries them) "
                             "or 'none' (open vocabulary, letter by letter)")
    parser.add_argument("--lm", default="model", metavar="FILE|model|none",
                        help="word language model for vocabulary decoding: an ARPA file (KenLM, SRILM), a UTF-8 "
                             "file of example sentences, one per line (a trigram model is trained on it, and its "
                             "words join the vocabulary), 'model' (default: the model's own, made from its "
                             "training transcripts, when it carries one) or 'none'")
    parser.add_argument("--lm-weight", type=float, default=None, metavar="W",
                        help="weight of the language model's log-probabilities (default 0.5; 0 turns it off)")
    parser.add_argument("--lead-silence", default="model", metavar="SECONDS|none|model",
                        help="cut leading quiet longer than this before recognition (e.g. 0.08: models learn "
                             "where their training clips' speech starts); none keeps it all; model (default) "
                             "cuts as the model's training clips were cut (`train speech --lead-silence`), "
                             "or not at all")
    parser.add_argument("--tail-silence", default="model", metavar="SECONDS|none|model",
                        help="append silence to clips that end less than this after their speech (e.g. 0.3: "
                             "models also learn how their training clips end); none leaves them as they are; "
                             "model (default) tops up to the typical ending of the model's training clips, "
                             "which `train speech` records, or leaves them as they are")
    parser.add_argument("--min-confidence", type=float, default=0.5, metavar="P",
                        help="a segment whose winning characters average a probability below P is noise, not "
                             "speech, and gives no text (default 0.5; 0: transcribe everything)")
    parser.add_argument("--max-segment", type=float, default=15.0, metavar="SECONDS",
                        help="long recordings are cut at silences into segments of at most this length (default 15)")
    parser.add_argument("--batch-size", type=int, default=16, metavar="N", help="segments per model call (default 16)")
    parser.add_argument("--format", choices=("txt", "json", "srt", "vtt"), default=None,
                        help="output format: txt (the text), json (text, duration, segments), srt or vtt (subtitles "
                             "from the segments); default: one 'FILE<TAB>TEXT' line per input")
    parser.add_argument("--output-dir", metavar="DIR",
                        help="write one file per input, DIR/<name>.<format> (default format txt), and print "
                             "'FILE<TAB>WRITTEN' per input")
    parser.add_argument("--json", action="store_true",
                        help="JSON Lines on stdout, one object per input (text, duration, segments)")
    add_common_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sensorium.runtime.audio_io import is_audio_path
    from sensorium.runtime.errors import UsageError
    from sensorium.runtime.paths import expand_paths
    from sensorium.runtime.speech import SpeechRecognizer

    inputs = expand_paths(args.inputs, is_audio_path)
    if args.json and args.format not in (None, "json"):
        raise UsageError("--json prints JSON records; with --format srt|vtt|txt leave it out")
    if args.format in ("srt", "vtt") and not args.output_dir and len(inputs) > 1:
        raise UsageError(f"--format {args.format} with several inputs needs --output-dir DIR (one file per input)")
    recognizer = load_predictor(SpeechRecognizer, args, beam=args.beam, max_segment=args.max_segment,
                                batch_size=args.batch_size, vocabulary=args.vocabulary,
                                min_confidence=args.min_confidence, language_model=args.lm,
                                lead_silence=args.lead_silence, tail_silence=args.tail_silence,
                                **({"lm_weight": args.lm_weight} if args.lm_weight is not None else {}))
    records = recognizer.records(inputs)
    if args.output_dir:
        return emit_results(_write_files(records, Path(args.output_dir), args.format or "txt"), as_json=args.json,
                            line=lambda r: f"{r['input']}\t{r['output']}")
    if args.format in ("srt", "vtt", "txt"):
        return _print_rendered(records, args.format)
    return emit_results(records, as_json=args.json or args.format == "json",
                        line=lambda r: f"{r['input']}\t{r['text']}")


def _print_rendered(records: Iterator[dict[str, Any]], fmt: str) -> int:
    from sensorium.runtime.subtitles import render

    failed = 0
    for record in records:
        if record["ok"]:
            sys.stdout.write(render(record, fmt))
            sys.stdout.flush()
        else:
            failed += 1
            print(f"error: {record['error']}", file=sys.stderr, flush=True)
    return 1 if failed else 0


def _write_files(records: Iterator[dict[str, Any]], out: Path, fmt: str) -> Iterator[dict[str, Any]]:
    """Write each transcript as OUT/<name>.<fmt> (atomically; repeated names get -2, -3, ...)."""
    from sensorium.runtime.atomic import atomic_write_text
    from sensorium.runtime.subtitles import render

    out.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    for record in records:
        if not record["ok"]:
            yield record
            continue
        stem = Path(str(record["input"])).stem or "audio"
        name, n = f"{stem}.{fmt}", 1
        while name in used:
            n += 1
            name = f"{stem}-{n}.{fmt}"
        used.add(name)
        path = atomic_write_text(out / name, render(record, fmt))
        yield {**record, "output": str(path)}


main = standalone_main("transcribe", DESCRIPTION, add_arguments, EPILOG)

if __name__ == "__main__":
    sys.exit(main())
