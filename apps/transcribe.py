"""`transcribe AUDIO... [--model ARTIFACT] [--beam N] [--json]`."""
from __future__ import annotations

import argparse
import sys

from sensorium.apps.cli import add_common_options, emit_results, has_tensorflow, standalone_main
from sensorium.runtime.errors import UsageError
from sensorium.pipelines.common.backend import require_tensorflow


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="AUDIO",
                        help="audio files (wav, flac, ogg, mp3, ...; any rate, any channels), folders or globs")
    parser.add_argument("--model", metavar="ARTIFACT",
                        help="run directory, .keras file, SavedModel or .tflite (default: the bundled English "
                             "model, trained on synthetic voices; its float32 .tflite without TensorFlow)")
    parser.add_argument("--runtime", choices=("auto", "keras", "edge"), default="auto",
                        help="edge: run a .tflite with the TFLite runtime, no TensorFlow (auto: edge for .tflite)")
    parser.add_argument("--threads", type=int, default=None, help="TFLite interpreter threads (edge runtime)")
    parser.add_argument("--beam", type=int, default=1, metavar="N",
                        help="CTC beam width (default 1: greedy decoding)")
    parser.add_argument("--max-segment", type=float, default=15.0, metavar="SECONDS",
                        help="long recordings are cut at silences into segments of at most this length")
    parser.add_argument("--batch-size", type=int, default=16, help="segments per model call (default 16)")
    parser.add_argument("--json", action="store_true",
                        help="JSON Lines on stdout, one object per input (text, duration, segments)")
    add_common_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sensorium.apps.defaults import default_model

    if args.beam < 1:
        raise UsageError("--beam must be at least 1")
    if not 1.0 <= args.max_segment <= 60.0:
        raise UsageError("--max-segment must be between 1 and 60 seconds")
    from sensorium.pipelines.speech.predict import SpeechRecognizer
    from sensorium.pipelines.speech.transcribe import transcribe_paths

    model = args.model or default_model("speech")
    if args.model is None and args.runtime != "keras" and (args.runtime == "edge" or not has_tensorflow()):
        model = model / "exports" / "model-float32.tflite"  # edge-only install: the bundled .tflite
    if args.runtime == "edge" or (args.runtime == "auto" and str(model).endswith(".tflite")):
        recognizer = SpeechRecognizer.from_tflite(model, num_threads=args.threads)
    else:
        require_tensorflow("transcribe", quiet=not args.debug)
        recognizer = SpeechRecognizer.from_artifact(model)
    results = transcribe_paths(recognizer, args.inputs, beam=args.beam, max_segment=args.max_segment,
                               batch_size=args.batch_size)
    return emit_results(results, as_json=args.json, line=lambda r: f"{r['input']}\t{r['text']}")


main = standalone_main("transcribe", "Transcribe speech with a speech model.", add_arguments)

if __name__ == "__main__":
    sys.exit(main())
