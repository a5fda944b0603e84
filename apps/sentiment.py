"""`sentiment TEXT... | --file F [--model MODEL] [--labels binary|three] [--long-text sentences|truncate]
[--fusion lexicon|none] [--json]`: label and probabilities per text."""
from __future__ import annotations

import argparse
import sys

from sensorium.apps.cli import (
    add_common_options,
    add_model_options,
    emit_results,
    load_predictor,
    standalone_main,
    text_inputs,
)

DESCRIPTION = "Label the sentiment of texts (negative, neutral, positive with the bundled model)."
EPILOG = """examples:
  sentiment "I love this airline, the crew was great"
  sentiment --file reviews.txt --json         one text per line, one JSON object per text
  tail -f comments.log | sentiment --file -   a stream, labelled as lines arrive
  sentiment --labels binary --file reviews.txt   positive or negative only (the calibrated binary head)
  sentiment --long-text truncate --file r.txt    read long texts whole, cut to the window (as before)
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("texts", nargs="*", metavar="TEXT", help="texts to label (quote each one)")
    parser.add_argument("--file", action="append", default=[], metavar="FILE",
                        help="a UTF-8 file with one text per line (- reads standard input); may repeat")
    add_model_options(parser, "sentiment", "the bundled English tweet model (its .tflite)")
    parser.add_argument("--labels", "--label-set", dest="label_set", choices=("binary", "three"), default=None,
                        help="binary: positive or negative, from the calibrated binary head; three: negative, "
                             "neutral, positive (default: the model's own labels); the JSON record's label_set says "
                             "which")
    parser.add_argument("--long-text", choices=("sentences", "truncate"), default=None,
                        help="sentences (default): a text longer than the model's training texts is read sentence "
                             "by sentence and their probabilities pooled; truncate: read whole, cut to the model's "
                             "window")
    parser.add_argument("--fusion", choices=("lexicon", "none"), default=None,
                        help="lexicon (default): the binary head adds VADER's calibrated opinion where the model "
                             "records one (the bundled model does); none: the model's own head alone")
    parser.add_argument("--json", action="store_true", help="JSON Lines on stdout, one object per text (label, scores)")
    add_common_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sensorium.runtime.errors import UsageError
    from sensorium.runtime.sentiment import TextClassifier

    if not args.texts and not args.file:
        raise UsageError("give texts to label, or --file FILE (one text per line; - for standard input)")
    classifier = load_predictor(TextClassifier, args, label_set=args.label_set, long_text=args.long_text,
                                fusion=args.fusion)

    def line(r: dict) -> str:
        scores = " ".join(f"{k} {v:.3f}" for k, v in r["scores"].items())
        text = r["input"] if len(r["input"]) <= 80 else r["input"][:77] + "..."
        return f"{r['label']}\t{scores}\t{' '.join(text.split())}"
    return emit_results(classifier.records(text_inputs(args)), as_json=args.json, line=line)


main = standalone_main("sentiment", DESCRIPTION, add_arguments, EPILOG)

if __name__ == "__main__":
    sys.exit(main())
