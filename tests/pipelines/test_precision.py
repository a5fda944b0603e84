"""Precision selection (issue 25): mixed bfloat16 on CPUs that have it natively, float32 with one log
line elsewhere; the run summary records the policy and whether oneDNN was on."""
from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from sensorium.pipelines.common import strategy
from sensorium.pipelines.common.strategy import choose_precision, cpu_has_bf16

SAPPHIRE = "processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16 amx_bf16 amx_tile\n\nprocessor\t: 1\n"
SKYLAKE = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw\nbugs\t\t: avx512_bf16_is_not_a_flag_here\n"


def test_cpu_bf16_is_read_from_the_flags_line():
    assert cpu_has_bf16(SAPPHIRE)
    assert not cpu_has_bf16(SKYLAKE)
    assert cpu_has_bf16("flags : amx_bf16\n") and not cpu_has_bf16("")


@pytest.mark.parametrize("mode,gpu,bf16,onednn,default,expected", [
    ("off", True, True, True, True, "float32"),
    ("auto", True, False, False, False, "mixed_float16"),
    ("on", True, False, False, False, "mixed_float16"),
    ("on", False, True, True, False, "mixed_bfloat16"),
    ("on", False, False, True, False, "float32"),  # no native bf16: float32
    ("on", False, True, False, False, "float32"),  # Eigen kernels emulate bf16: float32
    ("auto", False, True, True, False, "float32"),  # a task not checked in bf16 stays float32
    ("auto", False, True, True, True, "mixed_bfloat16"),
])
def test_choose_precision(mode, gpu, bf16, onednn, default, expected):
    assert choose_precision(mode, has_gpu=gpu, bf16=bf16, onednn=onednn, cpu_bf16_default=default) == expected


def test_choose_precision_rejects_unknown_modes():
    with pytest.raises(ValueError, match="auto, on, off"):
        choose_precision("bf16", has_gpu=False, bf16=True, onednn=True)


@pytest.mark.parametrize("bf16,onednn,why", [(False, True, "no native bfloat16"), (True, False, "oneDNN is off")])
def test_fallback_to_float32_says_so_in_one_line(monkeypatch, caplog, bf16, onednn, why):
    import keras

    monkeypatch.setattr(strategy, "cpu_has_bf16", lambda: bf16)
    monkeypatch.setattr(strategy, "onednn_enabled", lambda: onednn)
    try:
        with caplog.at_level(logging.INFO, logger=strategy.__name__):
            assert strategy.set_precision("on") == "float32"
        assert keras.mixed_precision.global_policy().name == "float32"
        lines = [r.getMessage() for r in caplog.records if r.name == strategy.__name__]
        assert len(lines) == 1 and why in lines[0] and "float32" in lines[0]
        caplog.clear()
        with caplog.at_level(logging.INFO, logger=strategy.__name__):
            strategy.set_precision("off")
            strategy.set_precision("auto")  # not asked for bf16: nothing to say
        assert not [r for r in caplog.records if r.name == strategy.__name__]
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_bf16_cpu_gets_mixed_bfloat16(monkeypatch):
    import keras

    monkeypatch.setattr(strategy, "cpu_has_bf16", lambda: True)
    monkeypatch.setattr(strategy, "onednn_enabled", lambda: True)
    try:
        assert strategy.set_precision("auto", cpu_bf16_default=True) == "mixed_bfloat16"
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_run_summary_records_precision_and_onednn():
    import tensorflow as tf

    from sensorium.pipelines.common.training import TrainSettings, run_summary

    state = SimpleNamespace(epochs_done=2, best_epoch=2, best=0.5, stopped_early=False)
    summary = run_summary(state, TrainSettings(), "mixed_bfloat16", tf.distribute.get_strategy())
    assert summary["precision_policy"] == "mixed_bfloat16"
    assert summary["onednn"] is strategy.onednn_enabled() and isinstance(summary["onednn"], bool)
