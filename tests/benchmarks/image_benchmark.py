#!/usr/bin/env python
"""Image-classification benchmark: training throughput, `classify` start-up and per-image latency.

A script, not a pytest test. Run it from the repository root:

    python tests/benchmarks/image_benchmark.py [--epochs 3] [--dataset builtin:mnist] [--batch-size 64]
                                               [--model RUN_DIR_OR_KERAS]

It prints a plain-text report to stdout:

1. training images/s of our input pipeline (`ImageSplit.dataset(..., training=True)` fed to
   `model.fit`) against plain `model.fit(x, y, shuffle=True)` on the same in-memory numpy arrays,
   same architecture, seed and compile settings; the first epoch (tracing) is discarded, the rest
   are timed by a callback. The two sides run interleaved (a, b, a, b, ...) and the median per side
   is reported, with PASS/FAIL against the bar "ours >= 0.95x numpy";
2. wall time of a `classify IMAGE --model MODEL` subprocess (start to answer), also with --json;
3. in-process batch latency (`ImageClassifier.records` over 256 PNG files, batch 32) and single-image
   latency (`classifier.predict` on one (1, H, W, 3) uint8 array).

The machine is shared: a `sensorium train` running at the same time skews every figure, and the
report says so when it sees one.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import argparse  # noqa: E402
import gc  # noqa: E402
import logging  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO / "assets" / "configs" / "mnist.json"
BAR = 0.95  # ours must reach this fraction of plain numpy fit throughput

log = logging.getLogger("image_benchmark")


def out(line: str = "") -> None:
    print(line, flush=True)


def busy_trainers() -> list[str]:
    """Command lines of other `sensorium train` processes (they contend for the CPU)."""
    try:
        proc = subprocess.run(["pgrep", "-af", "sensorium train"], capture_output=True, text=True)
    except FileNotFoundError:
        return []
    return [line for line in proc.stdout.splitlines()
            if line.strip() and not line.startswith(f"{os.getpid()} ")]


def load_avg() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


# === 1. training throughput ===
def epoch_timer():
    import keras

    class EpochTimer(keras.callbacks.Callback):
        """Wall seconds of each epoch (time.perf_counter at epoch begin / end)."""

        def __init__(self) -> None:
            super().__init__()
            self.seconds: list[float] = []
            self._t0 = 0.0

        def on_epoch_begin(self, epoch, logs=None):
            self._t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self._t0)

    return EpochTimer()


def train_once(side: str, config, train_split, *, epochs: int, batch_size: int, dataset_fn=None) -> dict:
    """Build and compile a fresh model (same spec and seed every time), fit, time the epochs.

    side: "ours" (ImageSplit.dataset), "numpy" (model.fit on arrays), or any other name with
    `dataset_fn(split, batch_size, seed) -> tf.data.Dataset` (a candidate pipeline).
    """
    import keras

    from sensorium.models.image import build_image_classifier
    from sensorium.pipelines.image.train import compile_classifier

    keras.backend.clear_session()
    gc.collect()
    keras.utils.set_random_seed(config.seed)
    labels = train_split.labels
    steps = -(-train_split.count // batch_size)
    model = build_image_classifier(config.model, num_classes=len(labels), labels=labels)
    compile_classifier(model, replace(config.train, epochs=epochs, batch_size=batch_size), steps, len(labels))
    timer = epoch_timer()
    if side == "numpy":
        model.fit(train_split.x, train_split.y, batch_size=batch_size, epochs=epochs, shuffle=True,
                  verbose=0, callbacks=[timer])
    else:
        if side == "ours":
            ds = train_split.dataset(batch_size, training=True, seed=config.seed, fixed=True)
        else:
            ds = dataset_fn(train_split, batch_size, config.seed)
        model.fit(ds, epochs=epochs, verbose=0, shuffle=False, callbacks=[timer])
    timed = timer.seconds[1:]  # the first epoch traces the graph: discarded
    rate = train_split.count * len(timed) / sum(timed)
    del model
    return {"side": side, "epoch_s": timer.seconds, "images_per_s": rate}


def fixed_dataset(split, batch_size: int, seed: int):
    """Alternative to ImageSplit.dataset (in-memory case), for comparison: shuffle indices, batch,
    then gather whole batches from the array (close to what Keras does for numpy input), instead of
    shuffling whole (H, W, 3) images element by element in a buffer and batching them.
    """
    import tensorflow as tf

    x = tf.constant(split.x)
    y = tf.constant(split.y)
    n = split.count
    ds = tf.data.Dataset.range(n).shuffle(n, seed=seed, reshuffle_each_iteration=True).batch(batch_size)
    ds = ds.map(lambda idx: (tf.gather(x, idx), tf.gather(y, idx)), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def pipeline_alone(train_split, *, batch_size: int, seed: int, epochs: int = 3) -> float:
    """Images/s of ImageSplit.dataset(training=True) iterated with no model (first epoch discarded)."""
    ds = train_split.dataset(batch_size, training=True, seed=seed, fixed=True)
    seconds = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        for _batch in ds:
            pass
        seconds.append(time.perf_counter() - t0)
    return train_split.count * (epochs - 1) / sum(seconds[1:])


def bench_training(config, train_split, *, epochs: int, batch_size: int, repeats: int,
                   try_fix: bool) -> dict:
    sides = ["ours", "numpy"] + (["ours-fixed"] if try_fix else [])
    results: dict[str, list[dict]] = {s: [] for s in sides}
    for r in range(repeats):
        order = sides if r % 2 == 0 else sides[::-1]  # interleave and alternate who goes first
        for side in order:
            res = train_once(side, config, train_split, epochs=epochs, batch_size=batch_size,
                             dataset_fn=fixed_dataset if side == "ours-fixed" else None)
            results[side].append(res)
            out(f"  run {r + 1} {side:<10} {res['images_per_s']:8.1f} images/s   epochs (s): "
                + " ".join(f"{s:.2f}" for s in res["epoch_s"]) + "  (first discarded)")
    return {s: statistics.median(r["images_per_s"] for r in rs) for s, rs in results.items()}


# === 2 and 3. classify ===
def classify_command() -> list[str]:
    script = Path(sys.executable).parent / "classify"
    if script.is_file():
        return [str(script)]
    found = shutil.which("classify")
    return [found] if found else [sys.executable, "-m", "sensorium.apps.classify"]


def time_subprocess(cmd: list[str], runs: int) -> tuple[list[float], str]:
    times, answer = [], ""
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
        times.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
        answer = proc.stdout.strip().splitlines()[0] if proc.stdout.strip() else ""
    return times, answer


def resolve_model(arg: str | None, config, labels: list[str], tmp: Path) -> tuple[Path, str]:
    if arg:
        return Path(arg), "given with --model"
    from sensorium.runtime.errors import ModelError
    from sensorium.runtime.predictor import bundled_model

    try:
        return bundled_model("image")[1], "bundled default model"
    except ModelError:
        import keras

        from sensorium.models.image import build_image_classifier

        keras.backend.clear_session()
        keras.utils.set_random_seed(config.seed)
        model = build_image_classifier(config.model, num_classes=len(labels), labels=labels)
        path = tmp / "untrained-image-classifier.keras"
        model.save(path)
        return path, "no bundled model: untrained model of the benchmark's architecture (timings only)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3, help="epochs per fit; the first is discarded (default 3)")
    parser.add_argument("--dataset", default="builtin:mnist",
                        help="data spec (default builtin:mnist; builtin:digits if mnist is not cached)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--model", metavar="RUN_DIR_OR_KERAS",
                        help="model for the classify timings (default: the bundled model, else an untrained one)")
    parser.add_argument("--config", default=str(DEFAULT_CONFIG),
                        help="config file for the architecture and optimiser (default assets/configs/mnist.json)")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved (ours, numpy) pairs (default 2)")
    parser.add_argument("--try-fix", action="store_true",
                        help="also time an alternative input pipeline (index shuffle + batch gather, "
                             "defined in this script)")
    parser.add_argument("--skip-training", action="store_true", help="only the classify timings")
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (the first epoch is discarded)")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    t_start = time.perf_counter()

    from sensorium.pipelines.common.backend import require_tensorflow

    require_tensorflow("the image benchmark")
    import keras
    import tensorflow as tf

    from sensorium.pipelines.common.config import resolve_config
    from sensorium.pipelines.common.strategy import set_precision
    from sensorium.pipelines.image.config import ImageClassificationConfig
    from sensorium.pipelines.image.data import load_train_validation
    from sensorium.runtime.errors import DataError
    from sensorium.runtime.predictor import assets_dir

    config = resolve_config(ImageClassificationConfig, args.config,
                            {"data.spec": args.dataset, "train.epochs": args.epochs,
                             "train.batch_size": args.batch_size})
    notes: list[str] = []
    t0 = time.perf_counter()
    try:
        train_split, _ = load_train_validation(config.data, seed=config.seed, image_size=tuple(config.model.image_size))
    except DataError as exc:
        if args.dataset != "builtin:mnist":
            raise
        notes.append(f"builtin:mnist unavailable ({str(exc).split(';')[0]}); fell back to builtin:digits")
        config.data.spec = "builtin:digits"
        train_split, _ = load_train_validation(config.data, seed=config.seed, image_size=tuple(config.model.image_size))
    load_s = time.perf_counter() - t0
    policy = set_precision(config.train.mixed_precision)

    others = busy_trainers()
    out("=== Sensorium image benchmark ===")
    out(f"machine      : {platform.node()} {platform.machine()}, {os.cpu_count()} CPU(s) "
        f"(usable {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else '?'}), "
        f"GPUs: {len(tf.config.list_physical_devices('GPU'))}, load avg {load_avg()}")
    out(f"software     : Python {platform.python_version()}, TensorFlow {tf.__version__}, Keras {keras.__version__}, "
        f"NumPy {np.__version__}, precision {policy}")
    out(f"dataset      : {config.data.spec} -> {train_split.split}: {train_split.count} images "
        f"{train_split.x.shape[1:] if train_split.x is not None else '(streamed)'} uint8, {len(train_split.labels)} classes (loaded in {load_s:.1f}s)")
    out(f"training     : {args.epochs} epochs per fit (first discarded), batch {args.batch_size}, "
        f"{args.repeats} interleaved repeats, model {config.model.architecture} {list(config.model.widths)} "
        f"({Path(args.config).name})")
    for note in notes:
        out(f"note         : {note}")
    out(f"contention   : {'NONE seen' if not others else 'a `sensorium train` is running: figures are skewed'}")
    for line in others:
        out(f"               {line[:150]}")
    out()

    # --- 1 ---
    verdict_ok = True
    if not args.skip_training:
        if train_split.x is None:
            out("1. training throughput: skipped (the split streams; numpy fit needs it in memory)")
        else:
            out("1. Training throughput (images/s, epochs 2..N, median of the interleaved runs)")
            medians = bench_training(config, train_split, epochs=args.epochs, batch_size=args.batch_size,
                                     repeats=args.repeats, try_fix=args.try_fix)
            ratio = medians["ours"] / medians["numpy"]
            verdict_ok = ratio >= BAR
            out(f"  ours  (ImageSplit.dataset -> fit) : {medians['ours']:8.1f} images/s")
            out(f"  numpy (fit(x, y, shuffle=True))   : {medians['numpy']:8.1f} images/s")
            out(f"  ratio ours/numpy                  : {ratio:8.3f}  -> {'PASS' if verdict_ok else 'FAIL'} "
                f"(bar: ours >= {BAR:.2f}x numpy)")
            alone = pipeline_alone(train_split, batch_size=args.batch_size, seed=config.seed)
            out(f"  input pipeline alone (no model)   : {alone:8.1f} images/s "
                f"({alone / medians['ours']:.0f}x the training rate: "
                f"{'not' if alone > 5 * medians['ours'] else 'possibly'} the bottleneck)")
            if "ours-fixed" in medians:
                out(f"  alt: index shuffle + batch gather : {medians['ours-fixed']:8.1f} images/s "
                    f"(ratio {medians['ours-fixed'] / medians['numpy']:.3f} of numpy)")
        out()

    # --- 2 and 3 ---
    with tempfile.TemporaryDirectory(prefix="sensorium-bench-") as tmp_name:
        tmp = Path(tmp_name)
        model_path, model_note = resolve_model(args.model, config, train_split.labels, tmp)
        examples = sorted((assets_dir() / "examples").glob("*.png"))
        example7 = assets_dir() / "examples" / "digit-7.png"
        try:
            rel7 = str(example7.relative_to(REPO))
        except ValueError:
            rel7 = str(example7)
        out(f"model        : {model_path} ({model_note})")
        out()

        cmd = classify_command() + [rel7, "--model", str(model_path)]
        out("2. End-to-end `classify` of one image (subprocess wall time, median of 3)")
        out(f"  command: {' '.join(Path(c).name if i == 0 else c for i, c in enumerate(cmd))}")
        times, answer = time_subprocess(cmd, 3)
        out(f"  plain  : {statistics.median(times):6.2f} s   runs: {', '.join(f'{t:.2f}' for t in times)}   "
            f"answer: {answer[:90]}")
        times, answer = time_subprocess(cmd + ["--json"], 3)
        out(f"  --json : {statistics.median(times):6.2f} s   runs: {', '.join(f'{t:.2f}' for t in times)}   "
            f"answer: {answer[:90]}")
        out()

        from sensorium.pipelines.image.predict import load
        from sensorium.runtime.image_io import load_image

        keras.backend.clear_session()
        gc.collect()
        t0 = time.perf_counter()
        classifier = load(model_path)
        load_model_s = time.perf_counter() - t0
        n, batch = 256, 32
        folder = tmp / "images"
        folder.mkdir()
        paths = []
        for i in range(n):
            src = examples[i % len(examples)]
            dst = folder / f"img_{i:04d}{src.suffix}"
            shutil.copyfile(src, dst)
            paths.append(str(dst))
        t0 = time.perf_counter()
        classifier.chunk_size = batch
        warm = list(classifier.records(paths[:batch]))
        warm_s = time.perf_counter() - t0
        runs = []
        for _ in range(3):
            t0 = time.perf_counter()
            results = list(classifier.records(paths))
            runs.append(time.perf_counter() - t0)
            bad = [r for r in results if not r["ok"]]
            if bad or len(results) != n:
                raise RuntimeError(f"classification failed on {len(bad)} of {n}: {bad[:1]}")
        total = statistics.median(runs)
        out(f"3. In-process latency ({Path(model_path).name} loaded in {load_model_s:.2f}s; "
            f"first batch of {batch} incl. tracing {warm_s:.2f}s, {sum(r['ok'] for r in warm)} ok)")
        out(f"  batch mode : ImageClassifier.records over {n} PNG files, batch {batch}: {total:.3f} s total, "
            f"{1000 * total / n:.2f} ms/image   runs: {', '.join(f'{t:.3f}' for t in runs)}")

        img = load_image(example7, size=classifier.image_size)[None]  # (1, H, W, 3) uint8
        for _ in range(5):
            classifier.predict(img)
        single = []
        for _ in range(50):
            t0 = time.perf_counter()
            classifier.predict(img)
            single.append(time.perf_counter() - t0)
        single.sort()
        out(f"  single     : classifier.predict on {tuple(img.shape)} {img.dtype}: median "
            f"{1000 * statistics.median(single):.2f} ms (min {1000 * single[0]:.2f}, "
            f"p90 {1000 * single[int(0.9 * len(single))]:.2f}) over 50 calls")
    out()
    others_end = busy_trainers()
    if others_end and not others:
        out("contention   : a `sensorium train` started during the benchmark: figures are skewed")
    out(f"total benchmark time: {time.perf_counter() - t_start:.1f} s   (load avg at end {load_avg()})")
    return 0 if verdict_ok else 1


if __name__ == "__main__":
    sys.exit(main())
