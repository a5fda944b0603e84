"""Translation data: sentence pairs -> placeholder-protected, tokenised, batched (source, target) datasets.

Placeholders and HTML tags are replaced by the symbols `<ph0>`... before tokenisation (in both
languages, with the same number for the same placeholder), so the model learns to move single tokens
and the decoder can be held to emit exactly the source's placeholders.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from sensorium.pipelines.common.dataspec import parse_spec
from sensorium.pipelines.translation.config import ParallelDataConfig
from sensorium.runtime.tokenizer import Tokenizers

log = logging.getLogger(__name__)


@dataclass
class ParallelSplit:
    spec: str
    split: str
    sources: list[str]
    targets: list[str]
    ids: list[str]
    failures: list[tuple[str, str]] = field(default_factory=list)
    _protected: tuple[list[str], list[str], list[bool]] | None = field(default=None, repr=False, compare=False)

    @property
    def count(self) -> int:
        return len(self.sources)

    def protected(self) -> tuple[list[str], list[str], list[bool]]:
        """(masked sources, masked targets, whether each pair holds the same placeholders on both sides),
        computed once (training asks for it three times: tokenizer, step count, batches)."""
        from sensorium.runtime.placeholders import protect_pair

        if self._protected is None:
            triples = [protect_pair(s, t) for s, t in zip(self.sources, self.targets)]
            self._protected = ([m for m, _, _ in triples], [m for _, m, _ in triples], [ok for _, _, ok in triples])
        return self._protected

    def dataset(self, batch_size: int, tokenizers: Tokenizers, *, max_source: int, max_target: int,
                training: bool = False, seed: int = 0, extra: ParallelSplit | None = None,
                extra_per_epoch: int | None = None):
        """Batches of ((source ids (B, S), decoder input ids (B, T)), decoder output ids (B, T)), 0-padded.
        Pairs whose placeholders differ between the sides are left out of training batches.

        Training only: `extra` pairs join every epoch, all of them or a fresh seeded sample of
        `extra_per_epoch` (the epoch is then this split plus that many extra pairs, shuffled together)."""
        import tensorflow as tf

        from sensorium.runtime.tokenizer import BOS_ID, EOS_ID

        parts = [self] + ([extra] if training and extra is not None and extra.count else [])
        src_txt: list[str] = []
        tgt_txt: list[str] = []
        sizes = []
        for part in parts:
            s_txt, t_txt, same = part.protected()
            keep = [i for i in range(len(s_txt)) if same[i] or not training]
            src_txt += [s_txt[i] for i in keep]
            tgt_txt += [t_txt[i] for i in keep]
            sizes.append(len(keep))
        src_ids = tokenizers.source.encode(src_txt, max_source)
        tgt_pieces = tokenizers.target.encode_pieces(tgt_txt)
        tgt_ids = [[BOS_ID] + p[:max_target] + [EOS_ID] for p in tgt_pieces]

        def flat(seqs):
            lengths = np.asarray([len(x) for x in seqs], np.int64)
            values = np.concatenate([np.asarray(x, np.int32) for x in seqs]) if seqs else np.zeros(0, np.int32)
            return tf.constant(values), np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64), lengths

        sv, ss, sl = flat(src_ids)
        tv, ts, tl = flat(tgt_ids)
        rows = tf.data.Dataset.from_tensor_slices((ss, sl, ts, tl))
        if training:
            ds = rows.take(sizes[0])
            per_epoch = sizes[0]
            if len(sizes) > 1:
                extra_rows = rows.skip(sizes[0])
                if extra_per_epoch is not None and extra_per_epoch < sizes[1]:
                    extra_rows = extra_rows.shuffle(sizes[1], seed=seed + 2, reshuffle_each_iteration=True)
                    extra_rows = extra_rows.take(extra_per_epoch)
                ds = ds.concatenate(extra_rows)
                per_epoch += min(sizes[1], extra_per_epoch or sizes[1])
            ds = ds.shuffle(min(per_epoch, 100_000), seed=seed, reshuffle_each_iteration=True)
            ds = ds.map(lambda a, b, c, d: (sv[a : a + b], tv[c : c + d]))  # (S,), (T + 2,)
            bounds = [b for b in (8, 12, 16, 24, 32, 48, 64, 96) if b < max_source]
            ds = ds.bucket_by_sequence_length(lambda s, t: tf.maximum(tf.shape(s)[0], tf.shape(t)[0]),
                                              bucket_boundaries=[b + 1 for b in bounds],
                                              bucket_batch_sizes=[batch_size] * (len(bounds) + 1))
            ds = ds.shuffle(64, seed=seed + 1, reshuffle_each_iteration=True)
        else:
            ds = rows.map(lambda a, b, c, d: (sv[a : a + b], tv[c : c + d])).padded_batch(batch_size)
        return ds.map(lambda s, t: ((s, t[:, :-1]), t[:, 1:])).prefetch(tf.data.AUTOTUNE)

    def training_pairs_per_epoch(self, extra: ParallelSplit | None, extra_per_epoch: int | None) -> int:
        """Pairs a training epoch holds (placeholder mismatches left out), for the step count."""
        count = self.protected()[2].count(True)
        if extra is not None and extra.count:
            n_extra = extra.protected()[2].count(True)
            count += n_extra if extra_per_epoch is None else min(n_extra, extra_per_epoch)
        return count


def load_parallel_split(spec: str, cfg: ParallelDataConfig, *, seed: int, default_split: str | None) -> ParallelSplit:
    from sensorium.pipelines.translation.sources import load_parallel

    items, split = load_parallel(parse_spec(spec), seed=seed, default_split=default_split, language=cfg.language,
                                 source_language=cfg.source_language, target_language=cfg.target_language,
                                 data_dir=cfg.data_dir, download=cfg.download)
    return ParallelSplit(spec, split, list(items.sources), list(items.targets), list(items.ids), list(items.failures))


def load_train_validation(cfg: ParallelDataConfig, *, seed: int) -> tuple[ParallelSplit, ParallelSplit]:
    """The training split and the validation split (the source's own, or 10% of training held out)."""
    train = load_parallel_split(cfg.spec, cfg, seed=seed, default_split="train")
    if cfg.validation_spec:
        return train, load_parallel_split(cfg.validation_spec, cfg, seed=seed, default_split="validation")
    parsed = parse_spec(cfg.spec)
    base = cfg.spec.rsplit("@", 1)[0] if parsed.split else cfg.spec
    if parsed.split in (None, "train"):
        from sensorium.runtime.errors import DataError

        try:
            return train, load_parallel_split(f"{base}@validation", cfg, seed=seed, default_split="validation")
        except DataError as exc:
            if "validation" not in str(exc):
                raise
    rng = np.random.default_rng(seed)
    order = rng.permutation(train.count)
    held = set(order[: max(1, train.count // 10)].tolist())
    log.info("%s has no validation split: 10%% of the training pairs are held out", cfg.spec)

    def part(keep: bool, name: str) -> ParallelSplit:
        idx = [i for i in range(train.count) if (i in held) != keep]
        return ParallelSplit(cfg.spec, name, [train.sources[i] for i in idx], [train.targets[i] for i in idx],
                             [train.ids[i] for i in idx])
    return part(True, train.split), part(False, "validation (held out of training)")


def held_out_sources(cfg: ParallelDataConfig, validation: ParallelSplit, *, seed: int) -> set[str]:
    """Normalised sources of the validation split and of the main spec's test split (when it has one)."""
    from sensorium.pipelines.translation.sources import normalise_source
    from sensorium.runtime.errors import DataError

    held = {normalise_source(s) for s in validation.sources}
    parsed = parse_spec(cfg.spec)
    if parsed.split in (None, "train"):
        base = cfg.spec.rsplit("@", 1)[0] if parsed.split else cfg.spec
        try:
            test = load_parallel_split(f"{base}@test", cfg, seed=seed, default_split="test")
        except DataError:
            test = None
        if test is not None:
            held |= {normalise_source(s) for s in test.sources}
    return held


def load_extra(cfg: ParallelDataConfig, held_out: set[str], *, seed: int) -> ParallelSplit | None:
    """The pairs of `cfg.extra_specs`, less any whose normalised source is in `held_out`; None when there are
    no extra specs. A spec without `@split` gives all its pairs (a TFDS dataset: its train split)."""
    from sensorium.pipelines.translation.sources import normalise_source

    if not cfg.extra_specs:
        return None
    sources: list[str] = []
    targets: list[str] = []
    ids: list[str] = []
    for spec in cfg.extra_specs:
        part = load_parallel_split(spec, cfg, seed=seed,
                                   default_split="train" if parse_spec(spec).kind == "tfds" else None)
        before = len(sources)
        for s, t, i in zip(part.sources, part.targets, part.ids):
            if normalise_source(s) not in held_out:
                sources.append(s)
                targets.append(t)
                ids.append(i)
        log.info("extra training data %s: %d pairs, %d dropped as their source is in the validation or test "
                 "split", spec, len(sources) - before, part.count - (len(sources) - before))
    return ParallelSplit("+".join(cfg.extra_specs), "train", sources, targets, ids)
