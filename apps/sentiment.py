"""`sentiment TEXT... | --file F [--model ARTIFACT] [--json]`: label and probabilities per text."""
from __future__ import annotations

import argparse
import sys

from sensorium.apps.cli import add_common_options, emit_results, has_tensorflow, standalone_main
from sensorium.runtime.errors import UsageError
from sensorium.pipelines.common.backend import require_tensorflow


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("texts", nargs="*", metavar="TEXT", help="texts to label (quote each one)")
    parser.add_argument("--file", action="append", default=[], metavar="FILE",
                        help="a UTF-8 file with one text per line (- reads standard input); may repeat")
    parser.add_argument("--model", metavar="ARTIFACT",
                        help="run directory, .keras file, SavedModel or .tflite (default: the bundled English "
                             "tweet model; its float32 .tflite without TensorFlow)")
    parser.add_argument("--runtime", choices=("auto", "keras", "edge"), default="auto",
                        help="edge: run a .tflite with the TFLite runtime, no TensorFlow (auto: edge for .tflite)")
    parser.add_argument("--threads", type=int, default=None, help="TFLite interpreter threads (edge runtime)")
    parser.add_argument("--json", action="store_true",
                        help="JSON Lines on stdout, one object per text (label, scores)")
    add_common_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sensorium.apps.defaults import default_model
    from sensorium.pipelines.sentiment.predict import TextClassifier, classify_texts
    from sensorium.runtime.text_io import text_items

    if not args.texts and not args.file:
        raise UsageError("give texts to label, or --file FILE (one text per line; - for standard input)")
    model = args.model or default_model("sentiment")
    if args.model is None and args.runtime != "keras" and (args.runtime == "edge" or not has_tensorflow()):
        model = model / "exports" / "model-float32.tflite"  # edge-only install: the bundled .tflite
    if args.runtime == "edge" or (args.runtime == "auto" and str(model).endswith(".tflite")):
        classifier = TextClassifier.from_tflite(model, num_threads=args.threads)
    else:
        require_tensorflow("sentiment", quiet=not args.debug)
        classifier = TextClassifier.from_artifact(model)
    results = classify_texts(classifier, text_items(args.texts, args.file))

    def line(r: dict) -> str:
        scores = " ".join(f"{k} {v:.3f}" for k, v in r["scores"].items())
        text = r["input"] if len(r["input"]) <= 80 else r["input"][:77] + "..."
        return f"{r['label']}\t{scores}\t{' '.join(text.split())}"
    return emit_results(results, as_json=args.json, line=line)


main = standalone_main("sentiment", "Label the sentiment of texts.", add_arguments)

if __name__ == "__main__":
    sys.exit(main())
