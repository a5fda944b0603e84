"""Tests for sensorium.pipelines.common.reports (PNG plots and Markdown model cards)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("matplotlib")
Image = pytest.importorskip("PIL.Image")

from sensorium.pipelines.common import reports  # noqa: E402
from sensorium.pipelines.common.reports import (  # noqa: E402
    plot_confusion_matrix,
    plot_training_curves,
    render_model_card,
    write_model_card,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Record each Figure handed to the PNG writer, still writing the file."""
    figures: list[Any] = []
    real = reports._save_png

    def spy(fig: Any, path: Path) -> Path:
        figures.append(fig)
        return real(fig, path)

    monkeypatch.setattr(reports, "_save_png", spy)
    return figures


def _assert_png(path: Path, min_side: int = 200) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        w, h = img.size
    assert min_side <= w <= 5000 and min_side <= h <= 5000, (w, h)
    return w, h


def _only_file(folder: Path, name: str) -> None:
    assert sorted(p.name for p in folder.iterdir()) == [name]


def test_confusion_matrix_png_annotations_and_normalisation(tmp_path: Path, captured: list[Any]) -> None:
    cm = [[5, 1, 0], [2, 3, 0], [0, 0, 0]]  # last row has no support
    out = plot_confusion_matrix(cm, ["cat", "dog", "owl"], tmp_path / "cm.png", title="Eval")
    assert out == tmp_path / "cm.png"
    _assert_png(out)
    _only_file(tmp_path, "cm.png")

    (fig,) = captured
    ax = fig.axes[0]
    assert ax.get_title() == "Eval"
    assert [t.get_text() for t in ax.texts] == [str(v) for row in cm for v in row]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["cat", "dog", "owl"]
    colours = np.asarray(ax.images[0].get_array())
    np.testing.assert_allclose(colours, [[5 / 6, 1 / 6, 0], [0.4, 0.6, 0], [0, 0, 0]])


def test_confusion_matrix_without_normalisation_uses_counts(tmp_path: Path, captured: list[Any]) -> None:
    cm = np.array([[5, 1], [2, 3]])
    plot_confusion_matrix(cm, ["a", "b"], tmp_path / "cm.png", normalize=False)
    np.testing.assert_allclose(np.asarray(captured[0].axes[0].images[0].get_array()), cm)


def test_confusion_matrix_skips_annotations_above_30_classes(tmp_path: Path, captured: list[Any]) -> None:
    rng = np.random.default_rng(0)
    n = 31
    cm = rng.integers(0, 20, size=(n, n)) + np.eye(n, dtype=int) * 50
    labels = [f"label_{i}" for i in range(n)]
    out = plot_confusion_matrix(cm, labels, tmp_path / "big.png")
    _assert_png(out, min_side=600)
    assert len(captured[0].axes[0].texts) == 0

    captured.clear()
    plot_confusion_matrix(cm[:30, :30], labels[:30], tmp_path / "thirty.png")
    assert len(captured[0].axes[0].texts) == 900


def test_confusion_matrix_overwrites_atomically(tmp_path: Path) -> None:
    target = tmp_path / "cm.png"
    target.write_bytes(b"old")
    for _ in range(2):
        plot_confusion_matrix([[1, 0], [0, 1]], ["a", "b"], target)
    _assert_png(target)
    _only_file(tmp_path, "cm.png")


@pytest.mark.parametrize(
    "cm,labels",
    [([[1, 2, 3]], ["a"]), ([[1, 0], [0, 1]], ["a", "b", "c"]), (np.zeros((0, 0)), [])],
)
def test_confusion_matrix_rejects_bad_shapes(tmp_path: Path, cm: Any, labels: list[str]) -> None:
    with pytest.raises(ValueError):
        plot_confusion_matrix(cm, labels, tmp_path / "cm.png")
    assert list(tmp_path.iterdir()) == []


def test_training_curves_groups_metric_families(tmp_path: Path, captured: list[Any]) -> None:
    history = {
        "loss": [1.0, 0.7, 0.5],
        "accuracy": [0.5, 0.7, 0.8],
        "val_loss": [1.1, 0.8, 0.6],
        "val_accuracy": [0.45, 0.6, 0.75],
        "auc": [0.6, 0.7, 0.8],
        "val_auc": [0.55, 0.65, 0.7],
        "learning_rate": [1e-3, 1e-3, 5e-4],
        "val_extra": [1.0, 2.0, 3.0],  # a val_ key with no training twin stands alone
    }
    out = plot_training_curves(history, tmp_path / "curves.png")
    _assert_png(out)
    _only_file(tmp_path, "curves.png")

    axes = captured[0].axes
    assert [ax.get_title() for ax in axes] == ["loss", "accuracy", "auc", "learning_rate", "extra"]
    by_title = {ax.get_title(): ax for ax in axes}
    loss_lines = by_title["loss"].get_lines()
    assert [line.get_label() for line in loss_lines] == ["loss", "val_loss"]
    np.testing.assert_array_equal(loss_lines[0].get_xdata(), [1, 2, 3])
    np.testing.assert_array_equal(loss_lines[1].get_ydata(), history["val_loss"])
    assert [line.get_label() for line in by_title["learning_rate"].get_lines()] == ["learning_rate"]


def test_training_curves_single_epoch_and_empty(tmp_path: Path) -> None:
    _assert_png(plot_training_curves({"loss": [0.3]}, tmp_path / "one.png"), min_side=100)
    with pytest.raises(ValueError):
        plot_training_curves({}, tmp_path / "empty.png")
    assert not (tmp_path / "empty.png").exists()


def test_render_model_card_sections() -> None:
    text = render_model_card(
        title="Flowers classifier",
        task="image classification",
        sections={
            "Overview": "A MobileNetV3 fine-tuned on flowers.",
            "Metrics": {"accuracy": 0.912345678, "top_5_accuracy": 1.0, "classes": 5, "note": "a|b"},
            "Limitations": ["Trained on 224x224 images", "Not for medical use"],
            "Empty": [],
        },
    )
    lines = text.splitlines()
    assert lines[0] == "# Flowers classifier"
    assert "**Task:** image classification" in lines
    headings = [l for l in lines if l.startswith("## ")]
    assert headings == ["## Overview", "## Metrics", "## Limitations", "## Empty"]
    assert "A MobileNetV3 fine-tuned on flowers." in lines
    assert "| Field | Value |" in lines and "| --- | --- |" in lines
    assert "| accuracy | 0.912346 |" in lines
    assert "| classes | 5 |" in lines
    assert "| note | a\\|b |" in lines  # a pipe cannot break the table
    assert "- Trained on 224x224 images" in lines and "- Not for medical use" in lines
    # Sections appear in order and the table follows its heading.
    assert lines.index("## Metrics") < lines.index("| Field | Value |") < lines.index("## Limitations")
    assert text.endswith("\n") and not text.endswith("\n\n")


def test_write_model_card_is_atomic_and_matches_render(tmp_path: Path) -> None:
    kwargs = {"title": "T", "task": "speech", "sections": {"Data": {"train": 100, "val": 10}}}
    target = tmp_path / "MODEL_CARD.md"
    target.write_text("stale")
    out = write_model_card(target, **kwargs)
    assert out == target
    assert target.read_text(encoding="utf-8") == render_model_card(**kwargs)
    _only_file(tmp_path, "MODEL_CARD.md")


def test_reports_module_avoids_tensorflow_and_pyplot(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; "
        "from sensorium.pipelines.common import reports; "
        f"reports.plot_training_curves({{'loss': [1.0, 0.5]}}, Path({str(tmp_path / 'c.png')!r})); "
        "bad = [m for m in ('tensorflow', 'keras', 'matplotlib.pyplot') if m in sys.modules]; "
        "assert not bad, bad"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    env.pop("MPLBACKEND", None)
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "c.png").read_bytes()[:8] == PNG_SIGNATURE
