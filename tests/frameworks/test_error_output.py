"""An application's errors and log records are never lost: Flask's default handler writes
its tracebacks to ``wsgi.errors`` from inside a logging call, which 3.13.4+ ``logging``
drops when passed on with ``logger.error()`` (``interfaces/wsgi/io.py``)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import httpx
import pytest

from tests.ftserve_process import ROOT, wait_for


def _served_output(app: str, paths: list[str]) -> str:
    """Run ``ftserve app`` in a subprocess, GET each path, stop it; its whole output."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "ftserver", "--port", "0", "--threads", "1", "--no-supervisor", app],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)  # type: ignore[arg-type]
    reader.start()
    try:
        def listening() -> str | None:
            return next((line.split("Listening on ")[1].split()[0] for line in lines if "Listening on " in line), None)

        url = wait_for(listening, 30, "the banner")
        for path in paths:
            httpx.get(f"{url}{path}", timeout=10)
        time.sleep(0.3)  # the worker writes its log lines at the end of its loop iteration
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        reader.join(timeout=10)
    return "".join(lines)


@pytest.mark.parametrize(
    ("framework", "expected"),
    [
        ("flask", ["Exception on /err [GET]", "ZeroDivisionError: division by zero", "marker from app.logger"]),
        ("django", ["Internal Server Error: /err", "ZeroDivisionError: division by zero", "marker from the app's logger"]),
    ],
)
def test_tracebacks_and_log_records_are_logged(framework, expected):
    pytest.importorskip(framework)
    output = _served_output(f"tests.frameworks.{framework}_errors:app", ["/err", "/log"])
    for line in expected:
        assert line in output
