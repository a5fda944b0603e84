"""`sensorium data ui-de` when current pip refuses a pinned wheel (non-standard metadata of an old
release, as shuup 3.1.0's): the wheel comes from the index's simple JSON API, checked against the
SHA-256 the index publishes."""
from __future__ import annotations

import hashlib
import json
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from sensorium.pipelines.datasets import ui_de
from sensorium.runtime.errors import DataError

WHEEL = b"PK\x05\x06" + bytes(18)  # an empty zip is enough: only the bytes and their hash matter here


@pytest.fixture
def index(monkeypatch):
    """A local package index serving pkg 1.0 (right hash) and pkg 2.0 (wrong hash)."""
    files = {"/files/pkg-1.0-py3-none-any.whl": WHEEL, "/files/pkg-2.0-py3-none-any.whl": WHEEL}
    page = {"files": [
        {"filename": "pkg-1.0-py3-none-any.whl", "url": "../../files/pkg-1.0-py3-none-any.whl",
         "hashes": {"sha256": hashlib.sha256(WHEEL).hexdigest()}},
        {"filename": "pkg-2.0-py3-none-any.whl", "url": "../../files/pkg-2.0-py3-none-any.whl",
         "hashes": {"sha256": "0" * 64}},
    ]}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            body = json.dumps(page).encode() if self.path == "/simple/pkg/" else files.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{server.server_port}/simple")
    yield
    server.shutdown()


def test_a_refused_wheel_is_fetched_from_the_index_with_its_hash_checked(index, tmp_path):
    path = ui_de.fetch_from_index("pkg", "1.0", tmp_path)
    assert path.read_bytes() == WHEEL
    with pytest.raises(DataError, match="SHA-256 differs from the index's"):
        ui_de.fetch_from_index("pkg", "2.0", tmp_path)
    with pytest.raises(DataError, match="no wheel of pkg==3.0"):
        ui_de.fetch_from_index("pkg", "3.0", tmp_path)


def test_pip_is_asked_again_without_the_refused_wheel(index, tmp_path, monkeypatch):
    calls = []

    def fake_pip(cmd, **kwargs):
        wanted = [a for a in cmd if "==" in a]
        calls.append(wanted)
        if "pkg==1.0" in wanted:
            return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found for pkg==1.0\n")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(ui_de.subprocess, "run", fake_pip)
    ui_de.download_wheels(tmp_path, [("other", "2.0"), ("pkg", "1.0")])
    assert calls == [["other==2.0", "pkg==1.0"], ["other==2.0"]]
    assert (tmp_path / "pkg-1.0-py3-none-any.whl").read_bytes() == WHEEL
    monkeypatch.setattr(ui_de.subprocess, "run", lambda cmd, **kw: subprocess.CompletedProcess(
        cmd, 1, "", "ERROR: Could not install: disk full\n"))
    with pytest.raises(DataError, match="UI catalogues failed: ERROR: Could not install: disk full"):
        ui_de.download_wheels(tmp_path, [("other", "2.0")])
