"""Static files (and an app's answer) checked by REDbot, "lint for HTTP", against a real
``ftserve``: no note of level BAD. REDbot sends its own follow-up requests (a range,
If-None-Match, If-Modified-Since); the answers it cannot ask for (416, 304, 405, HEAD) are
read off a raw socket and checked with httplint, the linter REDbot is built on.

REDbot is not a test dependency (its dependencies are not all free-threading safe):
install it into a venv of its own (``python3 -m venv /tmp/deploytools &&
/tmp/deploytools/bin/pip install redbot``) and put it on PATH, or name it in ``REDBOT``;
``ci/deploy-tools.sh`` installs it into ``.venv/tools``, where it is found too.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ftserve_process import Served, start_ftserve

#: ci/deploy-tools.sh installs it here.
TOOLS = Path(__file__).resolve().parents[2] / ".venv" / "tools" / "bin"
REDBOT = os.environ.get("REDBOT") or shutil.which("redbot") or shutil.which("redbot", path=str(TOOLS))
pytestmark = pytest.mark.skipif(not REDBOT, reason="redbot is not installed (see the module docstring)")
CSS = b"body { color: #333; margin: 0 auto; max-width: 40em; }\n" * 40


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("static")
    (root / "style.css").write_bytes(CSS)
    (root / "index.html").write_bytes(b"<!doctype html><html><head><title>t</title></head><body><p>hello</p></body></html>\n" * 4)
    (root / "data.bin").write_bytes(bytes(range(256)) * 64)
    served = start_ftserve("--threads", "1", "--static-path-mount", str(root), "--static-path-dir-to-file", "index.html", app="tests.apps.basic:hello")
    yield served
    served.stop()


def redbot_notes(url: str) -> list[dict[str, str]]:
    """REDbot's notes on ``url`` (its HAR output), subnotes included."""
    assert REDBOT is not None
    result = subprocess.run([REDBOT, "-o", "har", url], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    har = json.loads(result.stdout)
    notes: list[dict[str, str]] = []
    todo = [note for entry in har["log"]["entries"] for note in entry["_red_messages"]]
    while todo:
        note = todo.pop()
        notes.append(note)
        todo += note.get("subnotes", [])
    return notes


def httplint(response: bytes) -> str:
    """httplint's report on a raw HTTP response (it comes with REDbot)."""
    tool = os.environ.get("HTTPLINT") or str(Path(REDBOT or "").with_name("httplint"))
    if not os.access(tool, os.X_OK):
        tool = shutil.which("httplint") or pytest.skip("httplint (installed with redbot) not found")
    result = subprocess.run([tool, "-n"], input=response, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.decode()


def raw(port: int, head: str) -> bytes:
    """The whole response to ``head`` (sent with ``connection: close``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode() + b"host: test\r\nconnection: close\r\n\r\n")
        chunks = []
        while data := sock.recv(65536):
            chunks.append(data)
    return b"".join(chunks)


@pytest.mark.parametrize("path", ["/static/style.css", "/static/", "/static/data.bin", "/static/missing.css", "/"])
def test_redbot_finds_no_error(server: Served, path: str) -> None:
    notes = redbot_notes(f"http://127.0.0.1:{server.port}{path}")
    assert notes, "REDbot said nothing"
    bad = [f"{note['category']}: {note['summary']}" for note in notes if note["level"] == "BAD"]
    assert not bad, bad
    if path == "/static/style.css":
        summaries = {note["summary"] for note in notes if note["level"] == "GOOD"}
        assert "A ranged request returned the correct partial content." in summaries
        assert "If-None-Match conditional requests are supported." in summaries


def etag_of(port: int) -> str:
    head = raw(port, "HEAD /static/style.css HTTP/1.1\r\n").decode("latin-1")
    return next(line.split(":", 1)[1].strip() for line in head.split("\r\n") if line.lower().startswith("etag:"))


@pytest.mark.parametrize(
    "request_head",
    [
        "GET /static/style.css HTTP/1.1\r\nrange: bytes=999999-\r\n",  # 416
        "GET /static/style.css HTTP/1.1\r\nrange: bytes=10-19\r\n",  # 206
        "GET /static/style.css HTTP/1.1\r\nif-none-match: {etag}\r\n",  # 304
        "HEAD /static/style.css HTTP/1.1\r\n",
        "DELETE /static/style.css HTTP/1.1\r\n",  # 405
    ],
)
def test_httplint_on_answers_redbot_cannot_ask_for(server: Served, request_head: str) -> None:
    response = raw(server.port, request_head.format(etag=etag_of(server.port)))
    report = httplint(response)
    assert "[BAD]" not in report, report
    head = response.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()
    if " 416 " in head.split("\r\n", 1)[0]:
        # RFC 9110 §15.5.17: a 416 to a byte range says the current length.
        assert f"content-range: bytes */{len(CSS)}" in head
        assert head.count("content-type:") == 1
