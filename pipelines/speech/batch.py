"""Batch evaluation of a speech recogniser: items are the utterances of a data spec (audio paths or
waveforms) with their transcripts; each file is decoded when its batch runs, so an unreadable or
empty recording fails alone. Metrics: WER/CER (jiwer) over the records; report: WER by duration and
the worst utterances."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sensorium.pipelines.batch.task import BatchTask, EvalItem, ItemList, markdown_table
from sensorium.pipelines.common.artifacts import Artifact, run_config
from sensorium.runtime.errors import DataError
from sensorium.runtime.speech import SpeechRecognizer

TASK = SpeechRecognizer.task
DURATION_BUCKETS = (2.0, 5.0, 10.0, 20.0)  # seconds: <=2, 2-5, 5-10, 10-20, >20
WORST_LISTED = 20


def duration_bucket(seconds: float) -> str:
    low = 0.0
    for high in DURATION_BUCKETS:
        if seconds <= high:
            return f"{low:g}-{high:g} s"
        low = high
    return f">{DURATION_BUCKETS[-1]:g} s"


class SpeechBatchTask(BatchTask):
    task = TASK
    kind = "utterance"

    def list_items(self, artifact: Artifact, data: str | None) -> ItemList:
        from sensorium.pipelines.common.evaluation import evaluation_setup
        from sensorium.pipelines.speech.config import SpeechConfig, SpeechDataConfig
        from sensorium.pipelines.speech.sources import load_utterances

        setup = evaluation_setup(artifact.path, TASK, SpeechConfig, SpeechDataConfig, data, None)
        cfg = run_config(artifact, SpeechConfig)
        self.options.setdefault("beam", cfg.beam if cfg is not None else 1)
        self.options.setdefault("max_seconds", setup.data_config.max_seconds)
        dc = setup.data_config
        utts, split = load_utterances(setup.data, seed=setup.seed, default_split="test", data_dir=dc.data_dir,
                                      download=dc.download, audio_column=dc.audio_column, text_column=dc.text_column)
        items = [EvalItem(i, utts.ids[i], utts.audio[i], utts.texts[i]) for i in range(len(utts))]
        return ItemList(setup.data, split, items)

    def load_model(self, artifact: Artifact) -> Any:
        from sensorium.pipelines.speech.predict import load

        keys = ("vocabulary", "language_model", "lm_weight")
        return load(artifact).configure(**{k: self.options[k] for k in keys if self.options.get(k) is not None})

    def load(self, item: EvalItem) -> np.ndarray:
        """A 16 kHz float32 waveform."""
        from sensorium.runtime.audio_io import load_audio

        limit = self.options.get("max_seconds")
        if isinstance(item.payload, np.ndarray):
            wave = np.asarray(item.payload, dtype=np.float32)
            if limit and len(wave) > limit * 16000:
                raise DataError(f"{item.id}: {len(wave) / 16000:.1f} s is longer than {limit:g} s")
        else:
            wave = load_audio(item.payload, max_seconds=limit)
        if wave.size == 0:
            raise DataError(f"{item.id}: no audio (0 samples)")
        return wave

    def predict(self, model: Any, inputs: list[np.ndarray]) -> list[dict[str, Any]]:
        texts = model.transcribe(inputs, beam=int(self.options["beam"]), batch_size=len(inputs))
        return [{"text": t, "duration": round(len(w) / 16000, 4)} for t, w in zip(texts, inputs)]

    def metrics(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        from sensorium.pipelines.speech.evaluate import error_rates

        metrics = error_rates([r["reference"] for r in records], [r["text"] for r in records])
        metrics["beam"] = int(self.options["beam"])
        metrics["vocabulary"] = self.options.get("vocabulary") or "model"
        metrics["language_model"] = self.options.get("language_model") or "model"
        metrics["hours"] = round(sum(r["duration"] for r in records) / 3600, 4)
        return metrics

    def report(self, records: list[dict[str, Any]], metrics: dict[str, Any], dest: Path) -> list[str]:
        import jiwer

        from sensorium.pipelines.common.reports import plot_bars

        rows = []
        groups: dict[str, list[tuple[int, int]]] = {}
        for r in records:
            m = jiwer.process_words(r["reference"], r["text"])
            errors, words = m.substitutions + m.deletions + m.insertions, max(1, len(r["reference"].split()))
            rows.append((errors / words, errors, r))
            groups.setdefault(duration_bucket(r["duration"]), []).append((errors, words))
        order = sorted(groups, key=lambda k: min(r["duration"] for r in records if duration_bucket(r["duration"]) == k))
        wer = {k: sum(e for e, _ in groups[k]) / sum(w for _, w in groups[k]) for k in order}
        plot_bars(wer, dest / "plots" / "wer_by_duration.png", title="WER by utterance duration", ylabel="WER",
                  counts={k: len(groups[k]) for k in order})
        lines = ["## By duration", "", "![WER by duration](plots/wer_by_duration.png)", ""]
        lines += markdown_table(["duration", "utterances", "WER"], [[k, len(groups[k]), wer[k]] for k in order])
        rows.sort(key=lambda x: (-x[0], x[2]["index"]))
        lines += ["", "## Worst utterances", ""]
        lines += markdown_table(["id", "WER", "reference", "hypothesis"],
                                [[r["id"], rate, r["reference"], r["text"]]
                                 for rate, _, r in rows[:WORST_LISTED] if rate > 0])
        return lines


__all__ = ["SpeechBatchTask", "duration_bucket"]
