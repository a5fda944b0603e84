"""`classify IMAGE... [--model MODEL] [--top-k K] [--json]`: labels of images."""
from __future__ import annotations

import argparse
import sys

from sensorium.apps.cli import add_common_options, add_model_options, emit_results, load_predictor, standalone_main

DESCRIPTION = "Classify images (files, folders or glob patterns) with an image model."
EPILOG = """examples:
  classify photo.jpg                          top 5 of 1,000 ImageNet classes (the bundled model)
  classify --model digits digit.png           the bundled digits model, by name
  classify photos/ --json > labels.jsonl      a folder, one JSON object per image
  classify --model runs/pets img/*.jpg --top-k 5
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="IMAGE", help="image files, folders or glob patterns")
    add_model_options(parser, "image", "the bundled ImageNet-1k classifier (EfficientNet-Lite0, its float16 .tflite)")
    parser.add_argument("--top-k", type=int, default=5, metavar="K", help="how many classes to show (default 5)")
    parser.add_argument("--batch-size", type=int, default=32, metavar="N", help="images per model call (default 32)")
    parser.add_argument("--json", action="store_true", help="JSON Lines on stdout, one object per input")
    add_common_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sensorium.runtime.errors import UsageError
    from sensorium.runtime.image import ImageClassifier
    from sensorium.runtime.image_io import is_image_path
    from sensorium.runtime.paths import expand_paths

    if args.batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    classifier = load_predictor(ImageClassifier, args, top_k=args.top_k)
    classifier.chunk_size = args.batch_size
    return emit_results(classifier.records(expand_paths(args.inputs, is_image_path)), as_json=args.json, line=_line)


def _line(result: dict) -> str:
    others = ", ".join(f"{t['label']} {t['score']:.3f}" for t in result["top_k"][1:])
    return f"{result['input']}\t{result['label']}\t{result['score']:.4f}" + (f"\t({others})" if others else "")


main = standalone_main("classify", DESCRIPTION, add_arguments, EPILOG)

if __name__ == "__main__":
    sys.exit(main())
