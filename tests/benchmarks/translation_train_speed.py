#!/usr/bin/env python
"""Training throughput of the translator: seconds per step and target tokens per second.

A script, not a pytest test. From the repository root:

    python tests/benchmarks/translation_train_speed.py [--config assets/configs/translation.json]
        [--steps 40] [--batch-size 64] [--precision float32|mixed_bfloat16|mixed_float16]
        [--jit] [--pad-to N]

It builds the configuration's model (the bundled tokenizer), takes real training batches of the
configuration's data through the training pipeline (length buckets, placeholder protection), runs
5 warm-up steps, then times `--steps` optimizer steps with `train_on_batch`. What it measures is the
budget arithmetic behind "trains in at most 60 minutes": steps per hour on this machine.

`--jit` compiles the step with XLA. Bucketed batches have many shapes and XLA compiles each one,
so `--jit` is only fair with `--pad-to N` (every batch padded or cut to N source and N target
tokens; compare with the same `--pad-to` without `--jit`). oneDNN follows `TF_ENABLE_ONEDNN_OPTS`
(on unless set to 0, as in the CLI); bfloat16 on a CPU is only fast with oneDNN on.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "assets/configs/translation.json"))
    parser.add_argument("--tokenizer", default=str(REPO / "assets/models/translation/tokenizer.model"),
                        help="a shared SentencePiece model (default: the bundled translator's)")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, help="default: the configuration's")
    parser.add_argument("--precision", default="float32", choices=["float32", "mixed_bfloat16", "mixed_float16"])
    parser.add_argument("--jit", action="store_true", help="compile the training step with XLA")
    parser.add_argument("--pad-to", type=int, help="pad or cut every batch to this many tokens per side")
    parser.add_argument("--json", metavar="FILE", help="also write the figures here")
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    from sensorium.models.translation import build_translator, training_objects
    from sensorium.pipelines.common.config import resolve_config
    from sensorium.pipelines.common.optimizers import make_optimizer
    from sensorium.pipelines.translation.config import TranslationConfig
    from sensorium.pipelines.translation.data import load_train_validation
    from sensorium.runtime.tokenizer import SubwordTokenizer, Tokenizers

    keras.mixed_precision.set_global_policy(args.precision)
    cfg = resolve_config(TranslationConfig, args.config, {})
    batch_size = args.batch_size or cfg.train.batch_size
    tok = SubwordTokenizer.load(args.tokenizer)
    tokenizers = Tokenizers(tok, tok)
    train, _ = load_train_validation(cfg.data, seed=cfg.seed)
    ds = train.dataset(batch_size, tokenizers, training=True, seed=cfg.seed,
                       max_source=cfg.model.max_source_length, max_target=cfg.model.max_target_length)
    batches = [b for b in ds.take(4 * (args.steps + 5)) if int(b[1].shape[0]) == batch_size][: args.steps + 5]
    if len(batches) < args.steps + 5:
        raise SystemExit(f"only {len(batches)} full batches of {batch_size} in the data")
    if args.pad_to:
        n = args.pad_to

        def fit(x):  # (B, L) -> (B, n)
            x = x[:, :n]
            return tf.pad(x, [[0, 0], [0, n - tf.shape(x)[1]]])
        batches = [((fit(s), fit(t_in)), fit(t_out)) for (s, t_in), t_out in batches]

    loss_cls, accuracy = training_objects()
    model = build_translator(cfg.model, source_vocab=tok.vocab_size, target_vocab=tok.vocab_size)
    model.compile(optimizer=make_optimizer(cfg.train, 1000), loss=loss_cls(cfg.train.label_smoothing),
                  metrics=[accuracy], jit_compile=args.jit)
    for b in batches[:5]:
        model.train_on_batch(*b)
    tokens = sum(int(tf.math.count_nonzero(b[1])) for b in batches[5:])
    start = time.perf_counter()
    for b in batches[5:]:
        model.train_on_batch(*b)
    seconds = time.perf_counter() - start
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "config": args.config, "parameters": int(model.count_params()), "batch_size": batch_size,
        "precision": args.precision, "jit": args.jit, "pad_to": args.pad_to,
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "1",
        "steps": args.steps, "seconds_per_step": seconds / args.steps,
        "target_tokens_per_second": tokens / seconds, "pairs_per_second": args.steps * batch_size / seconds,
        "steps_per_hour": 3600 * args.steps / seconds,
    }
    for key, value in result.items():
        print(f"{key:>26}: {value:.3f}" if isinstance(value, float) else f"{key:>26}: {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
