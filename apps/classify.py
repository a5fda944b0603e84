"""`classify IMAGE_OR_FOLDER_OR_GLOB... [--model ARTIFACT] [--top-k K] [--json]`."""
from __future__ import annotations

import argparse
import sys

from sensorium.apps.cli import add_common_options, emit_results, has_tensorflow, standalone_main
from sensorium.pipelines.common.backend import require_tensorflow


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="IMAGE", help="image files, folders or glob patterns")
    parser.add_argument("--model", metavar="ARTIFACT",
                        help="run directory, .keras file, SavedModel or .tflite (default: the bundled MNIST model; "
                             "its int8 .tflite with the edge runtime or without TensorFlow)")
    parser.add_argument("--top-k", type=int, default=3, metavar="K", help="how many classes to show (default 3)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per model call (default 32)")
    parser.add_argument("--json", action="store_true", help="JSON Lines on stdout, one object per input")
    parser.add_argument("--runtime", choices=("auto", "keras", "edge"), default="auto",
                        help="edge: run a .tflite with the TFLite runtime, no TensorFlow (auto: edge for .tflite)")
    parser.add_argument("--threads", type=int, default=None, help="TFLite interpreter threads (edge runtime)")
    add_common_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sensorium.apps.defaults import default_model

    if args.top_k < 1:
        from sensorium.runtime.errors import UsageError

        raise UsageError("--top-k must be at least 1")
    from sensorium.pipelines.image.predict import ImageClassifier, classify_paths

    model = args.model or default_model("image")
    if args.model is None and args.runtime != "keras" and (args.runtime == "edge" or not has_tensorflow()):
        model = model / "exports" / "model-int8.tflite"  # edge-only install: the bundled int8 file
    edge = args.runtime == "edge" or (args.runtime == "auto" and str(model).endswith(".tflite"))
    if edge:
        classifier = ImageClassifier.from_tflite(model, num_threads=args.threads)
    else:
        require_tensorflow("classify", quiet=not args.debug)
        classifier = ImageClassifier.from_artifact(model)
    results = classify_paths(classifier, args.inputs, top_k=args.top_k, batch_size=args.batch_size)
    return emit_results(results, as_json=args.json, line=_line)


def _line(result: dict) -> str:
    others = ", ".join(f"{t['label']} {t['score']:.3f}" for t in result["top_k"][1:])
    return f"{result['input']}\t{result['label']}\t{result['score']:.4f}" + (f"\t({others})" if others else "")


main = standalone_main("classify", "Classify images with an image model.", add_arguments)

if __name__ == "__main__":
    sys.exit(main())
