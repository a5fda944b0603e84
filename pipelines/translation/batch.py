"""Batch evaluation of a translator: items are the sentence pairs of a data spec; records hold the
source, the translation and its sentence chrF; metrics are corpus BLEU/chrF (sacrebleu) and placeholder
preservation, reported by source length with the worst translations."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from sensorium.pipelines.batch.task import BatchTask, EvalItem, ItemList, markdown_table
from sensorium.pipelines.common.artifacts import Artifact, run_config
from sensorium.pipelines.sentiment.batch import length_bucket
from sensorium.runtime.errors import UsageError
from sensorium.runtime.translation import Translator

TASK = Translator.task
LENGTH_BUCKETS = ((1, 1), (2, 3), (4, 8), (9, 20), (21, None))  # source words
WORST_LISTED = 20


class TranslationBatchTask(BatchTask):
    task = TASK
    kind = "sentence"

    def list_items(self, artifact: Artifact, data: str | None) -> ItemList:
        from sensorium.pipelines.common.evaluation import evaluation_setup
        from sensorium.pipelines.translation.config import ParallelDataConfig, TranslationConfig
        from sensorium.pipelines.translation.data import load_parallel_split

        setup = evaluation_setup(artifact.path, TASK, TranslationConfig, ParallelDataConfig, data, None)
        cfg = run_config(artifact, TranslationConfig)
        if artifact.kind == "saved_model":  # greedy decoding inside the graph
            if self.options.setdefault("beam", 1) != 1:
                raise UsageError(f"{artifact.path}: a translation SavedModel decodes greedily; use --beam 1, or "
                                 "the run directory or .tflite for beam search")
        self.options.setdefault("beam", cfg.beam if cfg is not None else 4)
        split = load_parallel_split(setup.data, setup.data_config, seed=setup.seed, default_split="test")
        items = [EvalItem(i, split.ids[i], split.sources[i], split.targets[i]) for i in range(split.count)]
        return ItemList(setup.data, split.split, items, list(split.failures))

    def load_model(self, artifact: Artifact) -> Any:
        from sensorium.pipelines.translation.predict import load

        return load(artifact)

    def load(self, item: EvalItem) -> str:
        return str(item.payload)

    def predict(self, model: Any, inputs: list[str]) -> list[dict[str, Any]]:
        outputs = model.translate(inputs, beam=int(self.options["beam"]))
        return [{"source": s, "translation": t, "words": len(s.split())} for s, t in zip(inputs, outputs)]

    def metrics(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        from sensorium.pipelines.translation.evaluate import corpus_scores, placeholder_rate

        sources, outputs = [r["source"] for r in records], [r["translation"] for r in records]
        metrics: dict[str, Any] = corpus_scores(outputs, [r["reference"] for r in records])
        rate, with_ph = placeholder_rate(sources, outputs)
        metrics.update(placeholders_preserved=rate, items_with_placeholders=with_ph, beam=int(self.options["beam"]))
        return metrics

    def report(self, records: list[dict[str, Any]], metrics: dict[str, Any], dest: Path) -> list[str]:
        import sacrebleu

        from sensorium.pipelines.common.reports import plot_bars

        groups: dict[str, list[dict[str, Any]]] = {}
        for r in records:
            groups.setdefault(length_bucket(int(r["words"]), LENGTH_BUCKETS), []).append(r)
        order = [length_bucket(low, LENGTH_BUCKETS) for low, _ in LENGTH_BUCKETS
                 if length_bucket(low, LENGTH_BUCKETS) in groups]
        chrf = {k: float(sacrebleu.corpus_chrf([r["translation"] for r in groups[k]],
                                               [[r["reference"] for r in groups[k]]]).score) for k in order}
        plot_bars(chrf, dest / "plots" / "chrf_by_length.png", title="chrF by source length (words)", ylabel="chrF",
                  counts={k: len(groups[k]) for k in order})
        lines = ["## By source length", "", "![chrF by length](plots/chrf_by_length.png)", ""]
        lines += markdown_table(["words", "sentences", "chrF"], [[k, len(groups[k]), chrf[k]] for k in order])
        scored = sorted(((float(sacrebleu.sentence_chrf(r["translation"], [r["reference"]]).score), r)
                         for r in records), key=lambda x: (x[0], x[1]["index"]))
        lines += ["", "## Worst translations (sentence chrF)", ""]
        lines += markdown_table(["id", "chrF", "source", "reference", "translation"],
                                [[r["id"], s, r["source"], r["reference"], r["translation"]]
                                 for s, r in scored[:WORST_LISTED]])
        return lines


__all__ = ["TranslationBatchTask"]
