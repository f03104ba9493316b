"""A graceful stop closes the listener at once, without resetting what is queued there:
new clients are refused (not left hanging, then reset), connections already queued (the
kernel completed their handshake, no worker accepted them yet) are served."""

from __future__ import annotations

import asyncio
import select
import socket
import threading
import time

import pytest

from ftserver.testing import serve
from ftserver.threads.accept import AcceptQueue
from tests.ftserve_process import read_response, refused, send_request, wait_for

release = threading.Event()


async def app(scope, receive, send):
    """``/hold`` answers once the test sets ``release``; anything else at once."""
    if scope["type"] != "http":
        return
    if scope["path"] == "/hold":
        while not release.is_set():
            await asyncio.sleep(0.01)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


def pause_accepting(server) -> None:
    """Stop every accept path of ``server`` without stopping the server: what connects
    next stays queued in the kernel (a test hook; nothing in ftserver does this)."""
    if server.config.accept == "queue":
        (acceptor,) = [t for t in threading.enumerate() if isinstance(t, AcceptQueue)]
        acceptor.retire()
        return
    for worker in server.workers:
        done = threading.Event()
        worker.loop.call_soon_threadsafe(worker.loop.remove_reader, worker.listener.fileno())
        worker.loop.call_soon_threadsafe(done.set)
        assert done.wait(10)


@pytest.mark.parametrize("accept", ["queue", "reuseport"])
def test_connections_queued_when_the_stop_begins_are_served(accept):
    with serve(app, threads=2, accept=accept) as running:
        pause_accepting(running.server)
        clients = [send_request(running.port, "/", timeout=30) for _ in range(8)]
        stopper = threading.Thread(target=running.server.stop)
        stopper.start()
        answers = [read_response(client) for client in clients]  # ConnectionResetError before
        stopper.join(30)
        assert not stopper.is_alive()
    assert answers == [(200, "ok")] * 8


@pytest.mark.parametrize("accept", ["queue", "reuseport"])
def test_new_connections_are_refused_while_requests_drain(accept):
    release.clear()
    with serve(app, threads=2, accept=accept) as running:
        held = send_request(running.port, "/hold", timeout=30)
        wait_for(lambda: running.stats()["open_connections"] == 1, 10, "the request in flight")
        stopper = threading.Thread(target=running.server.stop)
        stopper.start()
        try:
            # Before: with --accept reuseport the connect succeeded and hung until the
            # drain was over, then was reset.
            wait_for(lambda: refused(running.port), 10, "new connections to be refused")
            assert select.select([held], [], [], 0)[0] == []  # still in flight meanwhile
        finally:
            release.set()
        assert read_response(held) == (200, "ok")
        stopper.join(30)
        assert not stopper.is_alive()


@pytest.mark.parametrize("accept", ["queue", "reuseport"])
def test_a_tls_connection_in_its_handshake_when_the_stop_begins_is_served(certs, accept):
    """The drain used to wait only for connections with a driver: one still in its TLS
    handshake (accepted before the stop, its ClientHello not yet read) was aborted at once."""
    options = {"ssl_certfile": certs.server, "ssl_keyfile": certs.server_key, "accept": accept}
    with serve(app, **options) as running:
        (worker,) = running.server.workers
        raw = socket.create_connection(("127.0.0.1", running.port), timeout=30)
        wait_for(lambda: worker.open_connections() == 1, 10, "the server to take the connection")
        stopper = threading.Thread(target=running.server.stop)
        stopper.start()
        wait_for(lambda: not worker.accepting, 10, "the stop to begin")
        with certs.client_context().wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(b"GET / HTTP/1.1\r\nhost: test\r\n\r\n")
            response = b""
            while chunk := tls.recv(65536):  # (then the server closes it: it is stopping)
                response += chunk
        stopper.join(30)
        assert not stopper.is_alive()
    assert response.startswith(b"HTTP/1.1 200 ") and response.endswith(b"\r\n\r\nok")


def test_the_workers_stop_only_once_the_acceptor_has_handed_over_what_was_queued():
    """The stop waited 5 s for the acceptor, then stopped the workers anyway: a connection
    it handed over next was closed unanswered (``adopt`` after ``accepting`` went False),
    and those still queued were reset when the listener closed. The hand-over is held here
    (as a loaded machine can hold the acceptor thread) past those 5 s."""
    with serve(app, threads=2, accept="queue", timeout_graceful_shutdown=30) as running:
        pause_accepting(running.server)
        (acceptor,) = [t for t in threading.enumerate() if isinstance(t, AcceptQueue)]
        clients = [send_request(running.port, "/", timeout=30) for _ in range(4)]
        hand_over = acceptor._hand_over

        def held_hand_over(sock, worker):
            wait_for(lambda: not worker.accepting or time.monotonic() > held_until, 10, "the hold")
            hand_over(sock, worker)

        acceptor._hand_over = held_hand_over
        held_until = time.monotonic() + 6
        stopper = threading.Thread(target=running.server.stop)
        stopper.start()
        answers = []
        for client in clients:
            try:
                answers.append(read_response(client))
            except ConnectionError as exc:
                answers.append(repr(exc))
        stopper.join(30)
        assert not stopper.is_alive()
    assert answers == [(200, "ok")] * 4
