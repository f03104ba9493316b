"""GIL detection: at start and after the app import, with the module CPython blames."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

from ftserver.runtime import GILReport, watch_gil

ROOT = Path(__file__).resolve().parent.parent


def test_watch_gil_names_the_module_cpython_blames():
    def load():
        warnings.warn(
            "The global interpreter lock (GIL) has been enabled to load module 'fakeext._speedups', "
            "which has not declared that it can run safely without the GIL.",
            RuntimeWarning,
        )
        return "app"

    app, report = watch_gil(load)
    assert app == "app"
    assert report.culprits == ["fakeext._speedups"]


def test_reenabled_report_describes_cause():
    report = GILReport(before=False, after=True, culprits=["fakeext"])
    assert report.reenabled
    if sys.implementation.name == "cpython" and __import__("sysconfig").get_config_var("Py_GIL_DISABLED"):
        assert report.describe() == "GIL re-enabled while importing the app: fakeext is not free-threading safe"


def test_other_warnings_are_not_swallowed():
    def load():
        warnings.warn("something else", DeprecationWarning)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        watch_gil(load)
    assert [str(w.message) for w in caught] == ["something else"]


def test_banner_warns_when_the_gil_is_on():
    # PYTHON_GIL=1 turns the GIL on in a free-threaded build; a regular build has it anyway.
    # (--mode auto would run processes instead: tests/mp_fallback/test_mode.py.)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ftserver", "--port", "0", "--threads", "2", "--mode", "threads", "tests.apps.basic:hello"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHON_GIL": "1"},
    )
    try:
        lines = [proc.stdout.readline() for _ in range(3)]
    finally:
        proc.terminate()
        proc.wait(10)
    text = "".join(lines)
    assert "GIL enabled" in text
    assert "will not run Python code in parallel" in text
