"""The HTTP/2 options: Config validation, the CLI and its FTSERVE_* variables, and the
settings a client sees."""

from __future__ import annotations

import h2.events
import httpx
import pytest

from ftserver.config import Config, ConfigError
from ftserver.protocols.http2 import H2Settings
from ftserver.testing import serve
from tests.apps import basic
from tests.test_cli import run_cli, start, stop
from tests.threads.h2client import H2Client, SettingCodes


@pytest.mark.parametrize(
    "option, value",
    [
        ("http", "3"),
        ("h2_max_concurrent_streams", 0),
        ("h2_initial_window_size", 2**31),
        ("h2_max_frame_size", 1000),
        ("h2_max_header_list_size", 10),
        ("h2_ping_interval", 0),
        ("h2_ping_timeout", -1),
    ],
)
def test_invalid_values_are_refused(option, value):
    with pytest.raises(ConfigError, match=option):
        Config(app="m:a", **{option: value})


def test_settings_from_config():
    config = Config(app="m:a", h2_max_concurrent_streams=7, h2_initial_window_size=1 << 20, h2_max_frame_size=1 << 15, h2_max_header_list_size=4096)
    assert config.h2_settings == H2Settings(max_concurrent_streams=7, initial_window_size=1 << 20, max_frame_size=1 << 15, max_header_list_size=4096)
    assert Config(app="m:a", http="1").h2_settings is None
    assert Config(app="m:a", http=2).http == "2"


def test_the_client_sees_the_settings():
    with serve(basic.echo, h2_max_concurrent_streams=7, h2_initial_window_size=1 << 20, h2_max_frame_size=1 << 15, h2_max_header_list_size=4096) as server:
        client = H2Client(server.port)
        try:
            events = client.events_until(lambda events: any(isinstance(e, h2.events.RemoteSettingsChanged) for e in events))
            changed = next(e for e in events if isinstance(e, h2.events.RemoteSettingsChanged)).changed_settings
            values = {code: setting.new_value for code, setting in changed.items()}
            assert values[SettingCodes.MAX_CONCURRENT_STREAMS] == 7
            assert values[SettingCodes.INITIAL_WINDOW_SIZE] == 1 << 20
            assert values[SettingCodes.MAX_FRAME_SIZE] == 1 << 15
            assert values[SettingCodes.MAX_HEADER_LIST_SIZE] == 4096
            # the connection window was opened to the same size
            client.events_until(lambda events: client.conn.outbound_flow_control_window >= 1 << 20)
            assert client.conn.outbound_flow_control_window == 1 << 20
        finally:
            client.close()


def test_cli_options_and_variables():
    assert "--h2-max-concurrent-streams" in run_cli("--help").stdout
    proc, url = start("--http", "2", "tests.apps.basic:hello", env={"FTSERVE_H2_MAX_CONCURRENT_STREAMS": "3", "FTSERVE_H2_PING_INTERVAL": "30s"})
    try:
        assert httpx.get(url).status_code == 505
        port = int(url.rsplit(":", 1)[1])
        client = H2Client(port)
        try:
            events = client.events_until(lambda events: any(isinstance(e, h2.events.RemoteSettingsChanged) for e in events))
            changed = next(e for e in events if isinstance(e, h2.events.RemoteSettingsChanged)).changed_settings
            assert changed[SettingCodes.MAX_CONCURRENT_STREAMS].new_value == 3
        finally:
            client.close()
    finally:
        assert stop(proc) == 0
    out = run_cli("--h2-max-frame-size", "10", "tests.apps.basic:hello")
    assert out.returncode != 0 and "h2_max_frame_size" in out.stderr
