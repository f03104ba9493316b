"""The scenario table: what is requested, from which app, with which load tool.

A scenario names its interface (``asgi``, ``wsgi``, ``rsgi``) and protocol (``http/1.1``, ``h2``,
``websocket``); every server that declares both runs it, unless ``servers`` narrows the list (or
the server's own ``scenarios`` does). ``tool`` picks the load generator from ``loadgen.TOOLS``:
``wrk``, ``h2load`` (HTTP/2) or ``wsload`` (WebSocket echo, ``wsload.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from apps import BODY_10K, CPU_BODY_BYTES, HELLO, STREAM_CHUNK, STREAM_CHUNKS

if TYPE_CHECKING:
    from servers import ServerSpec

#: h2load's connections and streams per connection for the HTTP/2 scenarios; wsload's clients.
H2_CONNECTIONS, H2_STREAMS, WS_CONNECTIONS = 32, 10, 32


@dataclass(frozen=True)
class Scenario:
    """One benchmark case."""

    name: str
    description: str
    interface: str
    app: str
    response_bytes: int  # expected body length: a run whose sample response differs is rejected
    method: str = "GET"
    request_bytes: int = 0  # request body size (the load tool sends that many bytes of "x")
    path: str = "/"
    tool: str = "wrk"
    servers: tuple[str, ...] | None = None  # None: every server that speaks `interface`
    default: bool = True  # part of a run when no --scenarios is given
    access_log: bool = False  # servers log every request (at --log-level info), as in production
    tls: bool = False  # over HTTPS (a self-signed certificate made for the run in a temporary folder)
    protocol: str = "http/1.1"  # or "h2", "websocket": servers declare which they speak
    connections: int | None = None  # None: the run's --connections (wrk -c)
    streams: int = 1  # h2load -m
    message_bytes: int = 0  # WebSocket echo message size

    def applies_to(self, server: ServerSpec) -> bool:
        """Whether ``server`` takes part in this scenario."""
        return (
            self.interface in server.interfaces
            and self.protocol in server.protocols
            and (server.tls or not self.tls)
            and (self.servers is None or server.name in self.servers)
            and (server.scenarios is None or self.name in server.scenarios)
        )


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("hello", "GET, 200 text/plain, 13-byte body", "asgi", "bench.apps:hello", response_bytes=len(HELLO)),
    # json, bytes_10k and rsgi_hello follow hello closely; they run with --scenarios (or all), leaving
    # the default run (~30 min on 2 vCPUs) room for the TLS, HTTP/2, WebSocket and framework scenarios.
    Scenario("json", "GET, JSON serialized per request", "asgi", "bench.apps:json_hello", response_bytes=28, default=False),
    Scenario(
        "bytes_10k",
        "GET, 10 KiB body in one message",
        "asgi",
        "bench.apps:bytes_10k",
        response_bytes=len(BODY_10K),
        default=False,
    ),
    Scenario(
        "echo_64k",
        "POST 64 KiB, body echoed back",
        "asgi",
        "bench.apps:echo",
        response_bytes=64 * 1024,
        method="POST",
        request_bytes=64 * 1024,
    ),
    Scenario(
        "stream",
        f"GET, {STREAM_CHUNKS} x {len(STREAM_CHUNK)} B more_body messages (chunked)",
        "asgi",
        "bench.apps:stream",
        response_bytes=STREAM_CHUNKS * len(STREAM_CHUNK),
    ),
    Scenario(
        "hello_logged",
        "hello with each server's access log on (to its log file)",
        "asgi",
        "bench.apps:hello",
        response_bytes=len(HELLO),
        servers=("ftserve", "ftserve-base", "uvicorn", "granian", "hypercorn"),
        access_log=True,
        default=False,
    ),
    Scenario(
        "tls_hello",
        "hello over TLS 1.3 (HTTP/1.1, keep-alive)",
        "asgi",
        "bench.apps:hello",
        response_bytes=len(HELLO),
        tls=True,
    ),
    Scenario(
        "h2_hello",
        f"hello over HTTP/2 cleartext (prior knowledge): h2load -c{H2_CONNECTIONS} -m{H2_STREAMS}",
        "asgi",
        "bench.apps:hello",
        response_bytes=len(HELLO),
        tool="h2load",
        protocol="h2",
        connections=H2_CONNECTIONS,
        streams=H2_STREAMS,
    ),
    Scenario(
        "h2_tls_hello",
        f"hello over HTTP/2 on TLS 1.3 (ALPN h2): h2load -c{H2_CONNECTIONS} -m{H2_STREAMS}",
        "asgi",
        "bench.apps:hello",
        response_bytes=len(HELLO),
        tls=True,
        tool="h2load",
        protocol="h2",
        connections=H2_CONNECTIONS,
        streams=H2_STREAMS,
    ),
    *(
        Scenario(
            name,
            f"WebSocket echo, {size} B binary messages, {WS_CONNECTIONS} clients each waiting for its echo (wsload)",
            "asgi",
            "bench.apps:ws_echo",
            response_bytes=size,
            tool="wsload",
            protocol="websocket",
            connections=WS_CONNECTIONS,
            message_bytes=size,
        )
        for name, size in (("ws_small", 32), ("ws_16k", 16 * 1024))
    ),
    Scenario(
        "starlette",
        "Starlette: GET /hello, the last of 11 routes, plain text",
        "asgi",
        "bench.frameworks.starlette_app:app",
        response_bytes=len(HELLO),
        path="/hello",
    ),
    Scenario(
        "fastapi",
        "FastAPI: GET /items/42, a typed path parameter, a pydantic model as JSON",
        "asgi",
        "bench.frameworks.fastapi_app:app",
        response_bytes=47,
        path="/items/42",
    ),
    Scenario(
        "rsgi_hello",
        "RSGI twin of hello (response_bytes)",
        "rsgi",
        "bench.apps:rsgi_hello",
        response_bytes=len(HELLO),
        default=False,
    ),
    Scenario("wsgi_hello", "WSGI twin of hello", "wsgi", "bench.apps:wsgi_hello", response_bytes=len(HELLO)),
    Scenario(
        "flask", "Flask (WSGI): GET /hello", "wsgi", "bench.frameworks.flask_app:app", response_bytes=len(HELLO), path="/hello"
    ),
    Scenario(
        "django",
        "Django (WSGI): GET /hello, no middleware",
        "wsgi",
        "bench.frameworks.django_app:app",
        response_bytes=len(HELLO),
        path="/hello",
    ),
    Scenario(
        "wsgi_cpu",
        "WSGI, ~1 ms of pure-Python CPU work per request",
        "wsgi",
        "bench.apps:wsgi_cpu",
        response_bytes=CPU_BODY_BYTES,
    ),
    Scenario(
        "wsgi_cpu_small",
        "wsgi_cpu's twin: the same loop on small ints (threads share nothing)",
        "wsgi",
        "bench.apps:wsgi_cpu_small",
        response_bytes=CPU_BODY_BYTES,
        servers=("ftserve", "ftserve-base", "granian"),
    ),
)


def select(names: list[str] | None) -> list[Scenario]:
    """The scenarios to run: the defaults, ``all``, or the named ones in table order."""
    if not names:
        return [s for s in SCENARIOS if s.default]
    if names == ["all"]:
        return list(SCENARIOS)
    known = {s.name for s in SCENARIOS}
    unknown = sorted(set(names) - known)
    if unknown:
        raise ValueError(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return [s for s in SCENARIOS if s.name in names]
