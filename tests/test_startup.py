"""The start-up steps shared by Server, the supervisor and the reloader (ftserver/startup.py)."""

from __future__ import annotations

import socket

import pytest

import ftserver
from ftserver.config import Config, ConfigError
from ftserver.loading import AppImportError, AppLoadError
from ftserver.net import BindError
from ftserver.server import Server
from ftserver.startup import (
    EXIT_APP_ERROR,
    EXIT_STARTUP_FAILED,
    Listening,
    StartupError,
    SupervisorError,
    as_startup_failure,
    bind_listener,
    exit_code_for,
    load_app,
)
from tests.apps.basic import hello


def test_package_attributes():
    from ftserver.api import run

    assert ftserver.run is run
    assert ftserver.Server is Server
    assert ftserver.Config is Config


@pytest.mark.parametrize(
    ("failure", "code"),
    [
        (SupervisorError("x", 7), 7),
        (SupervisorError("x"), EXIT_APP_ERROR),
        (AppLoadError("x"), EXIT_APP_ERROR),
        (ConfigError("x"), EXIT_APP_ERROR),
        (BindError(98, "x"), EXIT_APP_ERROR),
        (StartupError("x"), EXIT_STARTUP_FAILED),
        (AppImportError("m:app", ValueError("x")), EXIT_APP_ERROR),
    ],
)
def test_exit_codes(failure, code):
    assert exit_code_for(failure) == code


def test_the_apps_own_error_is_reported_as_an_import_error():
    known = BindError(98, "taken")
    assert as_startup_failure(known, "m:app", None) is known
    own = ValueError("at import")
    failure = as_startup_failure(own, "m:app", own)
    assert isinstance(failure, AppImportError) and "at import" in str(failure)
    assert as_startup_failure(ValueError("later"), "m:app", own) is None  # a bug: its traceback shows


def test_load_app_watches_the_gil_and_detects_the_interface():
    loaded = load_app(Config(app="tests.apps.basic:hello"))
    assert loaded.app is hello
    assert loaded.interface == "asgi"
    assert loaded.gil is not None
    assert load_app(Config(app=hello)).app is hello


def test_the_address_of_a_bound_and_of_an_inherited_socket():
    config = Config(app=hello, host="127.0.0.1", port=0)
    listener = bind_listener(config)
    try:
        where = Listening(config)
        where.take_address(listener, inherited=False)
        assert where.port == listener.getsockname()[1] != 0
        assert where.url == f"http://127.0.0.1:{where.port}"
        inherited = Listening(Config(app=hello, host="::1", fd=listener.fileno()))
        inherited.take_address(listener, inherited=True)
        assert (inherited.host, inherited.port) == ("127.0.0.1", where.port)
    finally:
        listener.close()


def test_a_file_in_the_unix_socket_path_is_left_alone(tmp_path):
    path = tmp_path / "not-a-socket"
    path.write_text("mine")
    server = Server(Config(app=hello, uds=str(path), threads=1, log_level="critical"))
    with pytest.raises(StartupError, match="exists and is not a socket"):
        server.start()
    server.stopped.wait(10)
    assert path.read_text() == "mine"


def test_the_unix_socket_is_removed_at_exit(tmp_path):
    path = tmp_path / "s.sock"
    server = Server(Config(app=hello, uds=str(path), threads=1, log_level="critical"))
    server.start()
    assert path.exists() and server.url == f"unix:{path}"
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(str(path))
    server.stop()
    assert not path.exists()
