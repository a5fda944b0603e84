"""`translate TEXT... | --file F [--model MODEL] [--beam N] [--length-penalty A] [--split sentences|none] [--json]`."""
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

DESCRIPTION = "Translate texts (UI strings: placeholders and tags are kept) with a translation model."
EPILOG = """examples:
  translate "Delete %(name)s?"                English to German with the bundled model
  translate --file messages.txt --beam 1      greedy decoding, one text per line
  translate --model runs/ui-de "Save {count} files" --json
  translate --split none "One. Two."        the whole text at once (cut at the model's window)
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("texts", nargs="*", metavar="TEXT", help="texts to translate (quote each one)")
    parser.add_argument("--file", action="append", default=[], metavar="FILE",
                        help="a UTF-8 file with one text per line (- reads standard input); may repeat")
    add_model_options(parser, "translation", "the bundled English-to-German UI-string model (its .tflite)")
    parser.add_argument("--beam", type=int, default=4, metavar="N", help="beam width (1: greedy; default 4)")
    parser.add_argument("--length-penalty", type=float, default=None, metavar="A",
                        help="beam search's length normalisation: scores divided by ((5 + length) / 6) ** A "
                             "(higher favours longer translations; default 2.0)")
    parser.add_argument("--split", choices=("sentences", "none"), default=None,
                        help="sentences (default): a text of several sentences is translated a sentence at a time "
                             "and rejoined; none: each text whole, cut to the model's window")
    parser.add_argument("--json", action="store_true", help="JSON Lines on stdout, one object per text")
    add_common_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sensorium.runtime.errors import UsageError
    from sensorium.runtime.translation import Translator

    if not args.texts and not args.file:
        raise UsageError("give texts to translate, or --file FILE (one text per line; - for standard input)")
    translator = load_predictor(Translator, args, beam=args.beam, length_penalty=args.length_penalty,
                                split=args.split)
    return emit_results(translator.records(text_inputs(args)), as_json=args.json,
                        line=lambda r: r["translation"])


main = standalone_main("translate", DESCRIPTION, add_arguments, EPILOG)

if __name__ == "__main__":
    sys.exit(main())
