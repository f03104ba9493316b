"""The in-test server: the serve() context manager and the pytest fixture."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from ftserver.testing import serve
from tests.apps import basic

ROOT = Path(__file__).resolve().parent.parent


def test_serve_context_manager_starts_and_stops():
    with serve(basic.hello) as server:
        assert server.port != 0
        assert server.url == f"http://127.0.0.1:{server.port}"
        assert httpx.get(server.url).status_code == 200
        url = server.url
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, timeout=2)


def test_serve_accepts_import_string():
    with serve("tests.apps.basic:hello") as server:
        assert httpx.get(server.url).text == "Hello, world!"


@pytest.mark.parametrize("threads", [1, 2])
def test_fixture(ftserve_app, threads):
    server = ftserve_app(basic.echo, threads=threads)
    assert httpx.post(server.url, content=b"abc").content == b"abc"
    other = ftserve_app(basic.hello)
    assert other.port != server.port


def test_fixture_under_its_former_name(ftserver):
    server = ftserver(basic.hello)
    assert httpx.get(server.url).text == "Hello, world!"


def test_the_readme_example_runs_as_written(tmp_path):
    """The README's "In tests" example, copied into a test module and run by pytest."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## In tests", 1)[1]
    example = section.split("```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "test_readme_example.py").write_text(example)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_readme_example.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 passed" in proc.stdout
