"""One bad item never aborts a run: whatever an item raises becomes that item's error record, and the
items before and after it are still answered (the bundled .tflite models; no TensorFlow needed)."""
from __future__ import annotations

import json

from sensorium.apps import translate as translate_app

PLACEHOLDER_BOMB = " ".join(f"<ph{i}>" for i in range(17))  # 17 distinct literal symbols: more than 16 fit


def test_a_text_that_cannot_be_protected_is_one_failed_item(tmp_path, capsys):
    lines = tmp_path / "in.txt"
    lines.write_text(f"Save\n{PLACEHOLDER_BOMB}\nOpen %s\n", encoding="utf-8")
    code = translate_app.main(["Delete %(name)s?", "--file", str(lines), "--json", "--beam", "1"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 1 and len(rows) == 4
    assert [r["ok"] for r in rows] == [True, True, False, True]
    assert "<phN>" in rows[2]["error"] and "\n" not in rows[2]["error"]
    assert "%(name)s" in rows[0]["translation"] and "%s" in rows[3]["translation"]


def test_the_python_api_reports_it_per_item():
    import sensorium

    records = sensorium.pipeline("translate", beam=1)(["Save", PLACEHOLDER_BOMB, "Open"], errors="record")
    assert [r["ok"] for r in records] == [True, False, True] and records[1]["input"] == PLACEHOLDER_BOMB
