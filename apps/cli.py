"""What every command shares: logging on stderr, one-line errors with the contract's exit codes,
JSON Lines output, and the options and model loading of the inference commands."""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from sensorium.runtime.errors import SensoriumError

# Folders whose hub modules a model file may load as they are now (read by sensorium.models.backbones.hub,
# which `--trust-hub-module` feeds; apps avoid importing it, it imports Keras).
TRUST_HUB_ENV = "SENSORIUM_TRUST_HUB_MODULE"


def quiet_tensorflow() -> None:
    """Keep TensorFlow's C++ and absl chatter off the terminal (set before TensorFlow is imported)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    # TensorFlow's oneDNN CPU kernels stay on (its default; TF_ENABLE_ONEDNN_OPTS=0 turns them off): the
    # heap corruption they caused on odd-sized batches is avoided by fixed, even-sized training batches
    # (sensorium.pipelines.common.batching).


class _StderrHandler(logging.StreamHandler):
    """A StreamHandler on whatever `sys.stderr` is when a record is written (not when the handler was
    made), so a server thread logging after a caller swapped stderr never writes to a closed stream."""

    @property  # type: ignore[override]
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns it; sys.stderr is always used
        pass


def setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_sensorium", False):
            root.removeHandler(handler)
    handler = _StderrHandler()
    handler._sensorium = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter("%(message)s" if verbosity <= 0 else "%(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("absl", "tensorflow", "h5py", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


def add_common_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("output")
    group.add_argument("-q", "--quiet", action="count", default=0, help="only warnings and errors on stderr")
    group.add_argument("-v", "--verbose", action="count", default=0, help="more log detail on stderr")
    group.add_argument("--debug", action="store_true", help="show tracebacks for unexpected errors")
    parser.add_argument("--trust-hub-module", action="append", default=[], metavar="DIR",
                        help="trust the hub module folder DIR as it is now when a model file uses it (or names a "
                             f"moved or remote module); repeatable; adds DIR to {TRUST_HUB_ENV} for the command")


@contextlib.contextmanager
def trusting_hub_modules(folders: Sequence[str]) -> Iterator[None]:
    """`--trust-hub-module` folders added to TRUST_HUB_ENV for the block (then the old value is back)."""
    before = os.environ.get(TRUST_HUB_ENV)
    if folders:
        os.environ[TRUST_HUB_ENV] = os.pathsep.join([*([before] if before else []), *folders])
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(TRUST_HUB_ENV, None)
        else:
            os.environ[TRUST_HUB_ENV] = before


def emit_json(obj: Any, stream=None) -> None:
    """One JSON object per line, flushed as produced."""
    stream = stream or sys.stdout
    stream.write(json.dumps(obj, ensure_ascii=False) + "\n")
    stream.flush()


def emit_results(results: Iterable[dict[str, Any]], *, as_json: bool, line: Callable[[dict[str, Any]], str]) -> int:
    """Print per-input results as they come (JSON Lines, or `line(result)` on stdout and failures as
    `error: ...` on stderr); returns the exit code: 1 when any input failed, else 0."""
    failed = 0
    for result in results:
        failed += not result["ok"]
        if as_json:
            emit_json(result)
        elif result["ok"]:
            print(line(result), flush=True)
        else:
            print(f"error: {result['error']}", file=sys.stderr, flush=True)
    return 1 if failed else 0


def run_command(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a command: SensoriumError -> one line and its exit code; never a traceback unless --debug."""
    setup_logging(getattr(args, "verbose", 0) - getattr(args, "quiet", 0))
    try:
        if getattr(args, "needs_tensorflow", False):
            from sensorium.pipelines.common.backend import require_tensorflow

            require_tensorflow(getattr(args, "command", None) or "this command",
                               quiet=not getattr(args, "debug", False))
        with trusting_hub_modules(getattr(args, "trust_hub_module", None) or []):
            return int(func(args) or 0)
    except SensoriumError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    except OSError as exc:  # disk full, permission denied, ...: the system's own words, one line
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug of ours: still one line, with the way to see more
        if getattr(args, "debug", False):
            traceback.print_exc()
        else:
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            print(f"error: unexpected {type(exc).__name__}: {first} (rerun with --debug for details)",
                  file=sys.stderr)
        return 1


def parse_and_run(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    return run_command(func, args)


def version() -> str:
    """The installed Sensorium's version."""
    from sensorium import __version__

    return __version__


class _Version(argparse.Action):
    """--version, reading the version only when asked (installed metadata is slow to read)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: Any, values: Any, option: Any = None) -> None:
        print(f"{parser.prog} {version()}")
        parser.exit()


def add_version_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--version", action=_Version, help="print the version and exit")


def standalone_main(prog: str, description: str, add_arguments: Callable[[argparse.ArgumentParser], None],
                    epilog: str = "") -> Callable[[Sequence[str] | None], int]:
    """The `main(argv)` of a command installed on its own (`classify`, `transcribe`, `sentiment`,
    `translate`): the same options as its `sensorium` sub-command, plus --version."""
    def main(argv: Sequence[str] | None = None) -> int:
        quiet_tensorflow()
        parser = argparse.ArgumentParser(prog=prog, description=description, epilog=epilog,
                                         formatter_class=argparse.RawDescriptionHelpFormatter)
        add_arguments(parser)
        add_version_option(parser)
        return parse_and_run(parser, argv)
    return main


def add_model_options(parser: argparse.ArgumentParser, task: str, default_help: str) -> None:
    """--model, --runtime and --threads of an inference command."""
    from sensorium.runtime.predictor import BUNDLED

    names = ", ".join(name for name, b in BUNDLED.items() if b.task == task)
    parser.add_argument("--model", metavar="MODEL",
                        help=f"a run directory, .keras file, SavedModel, .tflite, or a bundled model's name ({names}); "
                             f"default: {default_help}")
    parser.add_argument("--runtime", choices=("auto", "keras", "edge"), default="auto",
                        help="edge: run a .tflite on the TFLite runtime, no TensorFlow; keras: TensorFlow; auto "
                             "(default): edge for .tflite files and bundled models, else keras")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="TFLite interpreter threads (edge runtime; default: the runtime's choice)")


def load_predictor(predictor: Any, args: argparse.Namespace, **options: Any) -> Any:
    """`predictor.load` with the command line's --model, --runtime, --threads and the given options."""
    from sensorium.runtime.errors import UsageError

    if args.threads is not None and args.threads < 1:
        raise UsageError("--threads must be at least 1")
    try:
        return predictor.load(args.model, runtime=args.runtime, num_threads=args.threads, **options)
    except UsageError as exc:  # an option's check names the option: say it as the flag
        message = str(exc)
        for key in options:
            if message.startswith(f"{key} "):
                raise UsageError(f"--{key.replace('_', '-')}{message[len(key):]}") from None
        raise


def text_inputs(args: argparse.Namespace) -> Iterable[Any]:
    """The command line's texts, then the lines of each --file (read as they come; - is standard input)."""
    if not args.file:
        return list(args.texts)
    import itertools

    from sensorium.runtime.text_io import file_items

    return itertools.chain(args.texts, file_items(args.file))
