"""`translate TEXT... | --file F [--model ARTIFACT] [--beam N] [--length-penalty A] [--json]`."""
from __future__ import annotations

import argparse
import sys

from sensorium.apps.cli import add_common_options, emit_results, has_tensorflow, standalone_main
from sensorium.runtime.errors import UsageError
from sensorium.pipelines.common.backend import require_tensorflow
from sensorium.runtime.beam_search import DEFAULT_LENGTH_PENALTY


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("texts", nargs="*", metavar="TEXT", help="texts to translate (quote each one)")
    parser.add_argument("--file", action="append", default=[], metavar="FILE",
                        help="a UTF-8 file with one text per line (- reads standard input); may repeat")
    parser.add_argument("--model", metavar="ARTIFACT",
                        help="run directory, .keras file or .tflite (default: the bundled English-to-German "
                             "UI-string model; its dynamic-range .tflite without TensorFlow)")
    parser.add_argument("--beam", type=int, default=4, metavar="N", help="beam width (1: greedy; default 4)")
    parser.add_argument("--length-penalty", type=float, default=None, metavar="A",
                        help="beam search's length normalisation: scores divided by ((5 + length) / 6) ** A "
                             f"(higher favours longer translations; default {DEFAULT_LENGTH_PENALTY})")
    parser.add_argument("--runtime", choices=("auto", "keras", "edge"), default="auto",
                        help="edge: run a .tflite with the TFLite runtime, no TensorFlow (auto: edge for .tflite)")
    parser.add_argument("--threads", type=int, default=None, help="TFLite interpreter threads (edge runtime)")
    parser.add_argument("--json", action="store_true", help="JSON Lines on stdout, one object per text")
    add_common_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sensorium.apps.defaults import default_model
    from sensorium.runtime.text_io import text_items
    from sensorium.pipelines.translation.predict import Translator, translate_items

    if not args.texts and not args.file:
        raise UsageError("give texts to translate, or --file FILE (one text per line; - for standard input)")
    if not 1 <= args.beam <= 64:
        raise UsageError("--beam must be between 1 and 64")
    if args.length_penalty is not None and not 0 <= args.length_penalty <= 5:
        raise UsageError("--length-penalty must be between 0 and 5")
    model = args.model or default_model("translation")
    if args.model is None and args.runtime != "keras" and (args.runtime == "edge" or not has_tensorflow()):
        model = model / "exports" / "model-dynamic.tflite"  # edge-only install: the bundled .tflite
    if args.runtime == "edge" or (args.runtime == "auto" and str(model).endswith(".tflite")):
        translator = Translator.from_tflite(model, num_threads=args.threads)
    else:
        require_tensorflow("translate", quiet=not args.debug)
        translator = Translator.from_artifact(model)
    translator.length_penalty = args.length_penalty
    results = translate_items(translator, text_items(args.texts, args.file), beam=args.beam)
    return emit_results(results, as_json=args.json, line=lambda r: r["translation"])


main = standalone_main("translate", "Translate texts with a translation model.", add_arguments)

if __name__ == "__main__":
    sys.exit(main())
