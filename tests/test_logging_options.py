"""``--access-log-format`` (Gunicorn's atoms), ``--log-config`` and ``--env-file``, on real
ftserve processes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import httpx
import pytest

from ftserver.accessformat import AccessFormat, AccessFormatError
from ftserver.config import Config, ConfigError
from ftserver.envfile import EnvFileError, parse_env_file
from ftserver.protocols.events import Request
from tests.ftserve_process import ROOT, ftserve  # noqa: F401 - the fixture

GUNICORN_STYLE = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(M)s %({x-trace}i)s %({content-type}o)s %(p)s'


def wait_lines(path, count: int, timeout: float = 10.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            lines = path.read_text().splitlines()
            if len(lines) >= count:
                return lines
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} lines in {path}: {path.read_text() if path.exists() else None!r}")


@pytest.mark.parametrize("mode", ["--no-supervisor", "--workers=1"])
def test_access_log_format_writes_gunicorn_atoms(ftserve, tmp_path, mode):  # noqa: F811
    log = tmp_path / "access.log"
    served = ftserve(mode, "--access-log-file", str(log), "--access-log-format", GUNICORN_STYLE, app="tests.apps.basic:hello")
    headers = {"referer": "http://r.example/", "user-agent": "tester/1", "x-trace": "abc", "authorization": "Basic dXNlcjpwdw=="}
    assert httpx.get(served.url + "/p/q?x=1", headers=headers).status_code == 200
    (line,) = wait_lines(log, 1)
    pattern = (
        r'127\.0\.0\.1 - user \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "GET /p/q\?x=1 HTTP/1\.1" 200 13 '
        r'"http://r\.example/" "tester/1" \d+ abc text/plain(; charset=utf-8)? (\d+)'
    )
    match = re.fullmatch(pattern, line)
    assert match, line
    assert int(match[2]) != os.getpid()  # the serving process's id


def test_access_log_format_turns_the_access_log_on_and_marks_missing_values():
    config = Config(app="a:b", access_log_format="%(a)s|%(f)s|%({x}e)s")
    assert config.access_log
    request = Request(0, "GET", b"/", b"h", None, "1.1", [], None, False)
    assert AccessFormat(config.access_log_format).render(None, request, 200, (), 0, 0.0) == "-|-|-"
    assert AccessFormat("%(h)s %(r)s %(s)s").render(None, None, 400, (), 0, 0.0) == "- - 400"


@pytest.mark.parametrize("fmt", ["%(nope)s", "%(h)s %(", "%(h)d"])
def test_a_bad_access_log_format_is_a_config_error(fmt):
    with pytest.raises(ConfigError, match="access_log_format"):
        Config(app="a:b", access_log_format=fmt)
    with pytest.raises(AccessFormatError):
        AccessFormat(fmt)


def test_a_bad_access_log_format_is_one_cli_line():
    proc = subprocess.run(
        [sys.executable, "-m", "ftserver.cli", "--access-log-format", "%(zz)s", "tests.apps.basic:hello"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    assert "unknown atom %(zz)s" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_log_config_json_routes_both_logs(ftserve, tmp_path):  # noqa: F811
    access_log = tmp_path / "access.log"
    config = {
        "version": 1,
        "formatters": {"plain": {"format": "CFG %(name)s %(levelname)s %(message)s"}},
        "handlers": {
            "errors": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "formatter": "plain"},
            "access": {"class": "logging.FileHandler", "filename": str(access_log), "formatter": "plain"},
        },
        "loggers": {
            "ftserver.error": {"handlers": ["errors"], "propagate": False},
            "ftserver.access": {"handlers": ["access"], "propagate": False},
        },
    }
    path = tmp_path / "logging.json"
    path.write_text(json.dumps(config))
    served = ftserve("--no-supervisor", "--access-log", "--log-config", str(path), app="tests.apps.basic:hello")
    # The file's format; --log-level's INFO for the level the file left unset.
    assert re.search(r"^CFG ftserver\.error INFO Listening on http://", served.output, re.M), served.output
    assert httpx.get(served.url + "/n/1").status_code == 200
    (line,) = wait_lines(access_log, 1)
    assert re.fullmatch(r'CFG ftserver\.access INFO 127\.0\.0\.1:\d+ - "GET /n/1 HTTP/1\.1" 200 13 \d+\.\d\dms', line), line


def test_log_config_ini_file(ftserve, tmp_path):  # noqa: F811
    access_log = tmp_path / "access.log"
    path = tmp_path / "logging.ini"
    path.write_text(
        "[loggers]\nkeys=root,access\n\n[handlers]\nkeys=file\n\n[formatters]\nkeys=f\n\n"
        "[logger_root]\nlevel=WARNING\nhandlers=\n\n"
        "[logger_access]\nlevel=INFO\nhandlers=file\npropagate=0\nqualname=ftserver.access\n\n"
        f"[handler_file]\nclass=FileHandler\nformatter=f\nargs=({str(access_log)!r},)\n\n"
        "[formatter_f]\nformat=INI %(message)s\n"
    )
    served = ftserve("--no-supervisor", "--access-log", "--log-config", str(path), app="tests.apps.basic:hello")
    assert httpx.get(served.url + "/n/2").status_code == 200
    (line,) = wait_lines(access_log, 1)
    assert line.startswith("INI 127.0.0.1:") and '"GET /n/2 HTTP/1.1" 200' in line
    # The server log, which the file left with nowhere to go, got our own handler.
    assert re.search(r"\] INFO: Listening on http://", served.output), served.output


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [("bad.json", "{nope", "cannot apply"), ("list.json", "[1, 2]", "must hold a mapping"), ("bad.ini", "[x]\n", "cannot apply")],
)
def test_a_bad_log_config_is_one_cli_line(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    proc = subprocess.run(
        [sys.executable, "-m", "ftserver.cli", "--no-supervisor", "--port", "0", "--log-config", str(path), "tests.apps.basic:hello"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode != 0
    assert message in proc.stderr and "log_config" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_env_file_reaches_the_app_and_the_environment_wins(ftserve, tmp_path):  # noqa: F811
    env = tmp_path / ".env"
    env.write_text(
        "# settings\nexport GREETING='hello there'\nNAME=\"a \\\"b\\\"\"\nFROM_ENV=file\nCOMBINED=${NAME}-x # note\n"
    )
    served = ftserve("--no-supervisor", "--env-file", str(env), app="tests.apps.basic:environment", env={"FROM_ENV": "process"})
    values = httpx.get(served.url + "/", params={"names": "GREETING,NAME,FROM_ENV,COMBINED"}).json()
    assert values == {"GREETING": "hello there", "NAME": 'a "b"', "FROM_ENV": "process", "COMBINED": 'a "b"-x'}


def test_env_file_errors(tmp_path):
    env = tmp_path / ".env"
    env.write_text("GOOD=1\nthis is not an assignment\n")
    with pytest.raises(EnvFileError, match="line 2"):
        parse_env_file(str(env))
    with pytest.raises(ConfigError, match="env_file: .*line 2"):
        Config(app="a:b", env_file=str(env))
    with pytest.raises(ConfigError, match="env_file: cannot read"):
        Config(app="a:b", env_file=str(tmp_path / "missing.env"))
