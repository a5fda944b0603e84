"""`sensorium serve`: the options and the command (imports aiohttp only when the command runs)."""
from __future__ import annotations

import argparse
import logging

DESCRIPTION = """Serve models over HTTP: TF Serving's REST API (/v1/models/NAME, /metadata, :predict),
the endpoints /classify, /transcribe, /sentiment and /translate, and a demo page at /.
Without --model every bundled model is served (imagenet, speech, sentiment, translation) on the
TensorFlow-free runtime; a .keras file, run directory or SavedModel needs sensorium[full].
Needs the serve extra: pip install "sensorium[serve]"."""
EPILOG = """examples:
  sensorium serve                                   every bundled model on http://127.0.0.1:8080/
  sensorium serve --model image=runs/pets --model translation
  sensorium serve --model classify:pets=runs/pets/exports/model-int8.tflite --port 9000
  curl -s localhost:8080/v1/models/imagenet/metadata
  curl -s -F file=@photo.jpg localhost:8080/classify
  curl -s -H 'Content-Type: application/json' -d '{"instances": ["great flight!"]}' \\
       localhost:8080/v1/models/sentiment:predict
SIGTERM or Ctrl-C drains: requests in flight are answered, then the server exits."""

log = logging.getLogger("sensorium.serve")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from sensorium.apps.cli import add_common_options

    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1, this machine only; 0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080; 0: any free port)")
    parser.add_argument("--model", action="append", default=[], metavar="TASK[:NAME]=ARTIFACT",
                        help="serve ARTIFACT (a bundled model's name, .tflite, run directory, .keras or SavedModel) "
                             "for TASK (image, speech, sentiment, translation, or classify, transcribe, ...), under "
                             "NAME (default: the bundled name, else the task); repeatable; default: every bundled "
                             "model")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="predictor copies per model, each on its own thread (default 1)")
    parser.add_argument("--runtime", choices=("auto", "keras", "edge"), default="auto",
                        help="edge: .tflite on the TFLite runtime; keras: TensorFlow; auto (default): edge for .tflite "
                             "files and bundled models")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="TFLite interpreter threads per predictor (default: the runtime's choice)")
    parser.add_argument("--top-k", type=int, default=5, metavar="K", help="classes per image record (default 5)")
    parser.add_argument("--cors", action="append", default=[], metavar="ORIGIN",
                        help="allow browser pages from ORIGIN (e.g. https://app.example.org, or *) to call the API; "
                             "repeatable; default: no CORS headers")
    limits = parser.add_argument_group("limits")
    limits.add_argument("--max-body-mb", type=float, default=16.0, metavar="MB",
                        help="largest request body (default 16)")
    limits.add_argument("--max-file-mb", type=float, default=12.0, metavar="MB",
                        help="largest image or recording in a request (default 12)")
    limits.add_argument("--max-instances", type=int, default=64, metavar="N",
                        help="most instances in one :predict request (default 64)")
    limits.add_argument("--max-text-chars", type=int, default=10_000, metavar="N",
                        help="longest text (default 10000)")
    limits.add_argument("--max-audio-seconds", type=float, default=600.0, metavar="S",
                        help="longest recording (default 600)")
    limits.add_argument("--max-queue", type=int, default=1024, metavar="N",
                        help="instances waiting per model before requests get 503 (default 1024)")
    limits.add_argument("--drain-timeout", type=float, default=30.0, metavar="S",
                        help="on SIGTERM, how long in-flight requests may take to finish (default 30)")
    add_common_options(parser)


def run(args: argparse.Namespace) -> int:
    """Load the models, then serve until SIGTERM / Ctrl-C."""
    from sensorium.runtime.errors import MissingExtraError, UsageError

    try:
        import aiohttp  # noqa: F401
    except ImportError:
        raise MissingExtraError('sensorium serve needs the serve extra: pip install "sensorium[serve]"') from None
    from sensorium.apps.serve.inputs import Limits
    from sensorium.apps.serve.models import default_specs, load_models, parse_model_spec
    from sensorium.apps.serve.server import serve

    checks = {"--port": 0 <= args.port <= 65535, "--workers": args.workers >= 1, "--top-k": args.top_k >= 1,
              "--threads": args.threads is None or args.threads >= 1, "--max-body-mb": args.max_body_mb > 0,
              "--max-file-mb": 0 < args.max_file_mb, "--max-instances": args.max_instances >= 1,
              "--max-text-chars": args.max_text_chars >= 1, "--max-audio-seconds": args.max_audio_seconds > 0,
              "--max-queue": args.max_queue >= 1, "--drain-timeout": args.drain_timeout >= 0}
    bad = [flag for flag, ok in checks.items() if not ok]
    if bad:
        raise UsageError(f"{bad[0]} is out of range (see sensorium serve --help)")
    for origin in args.cors:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            raise UsageError(f"--cors {origin!r}: an origin is scheme://host[:port] (e.g. https://app.example.org) "
                             "or *")
    specs = [parse_model_spec(text) for text in args.model] or default_specs()
    limits = Limits(max_body_bytes=int(args.max_body_mb * 2**20), max_file_bytes=int(args.max_file_mb * 2**20),
                    max_instances=args.max_instances, max_text_chars=args.max_text_chars,
                    max_audio_seconds=args.max_audio_seconds)
    models = load_models(specs, workers=args.workers, runtime=args.runtime, num_threads=args.threads,
                         top_k=args.top_k, max_queue=args.max_queue)
    return serve(models, host=args.host, port=args.port, limits=limits, cors_origins=[o.rstrip("/") for o in args.cors],
                 drain_timeout=args.drain_timeout)
