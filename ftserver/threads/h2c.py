"""Cleartext HTTP/2 on the HTTP/1.1 port: the HTTP/1.1 driver hands its connection to an
``HTTP2Driver`` on the prior-knowledge preface (RFC 9113 §3.3) or after an ``Upgrade: h2c``
request (RFC 7540 §3.2), whose body it reads whole first. Nothing here runs for a plain
HTTP/1.1 request: the preface is found when the parser refuses it, an ``Upgrade`` only on
the parser's slow path.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ftserver.protocols.errors import ProtocolError
from ftserver.protocols.http1.common import comma_tokens
from ftserver.protocols.http2 import PREFACE, upgraded_request
from ftserver.threads.http2 import HTTP2Driver

if TYPE_CHECKING:
    from ftserver.protocols.http1 import H1Request

#: (The HTTP/1.1 driver, which imports this module: typed loosely to keep imports one-way.)
HTTP1Driver = Any

logger = logging.getLogger("ftserver.error")

#: What the HTTP/1.1 parser sees of the preface: a complete head for "HTTP/2.0".
PREFACE_HEAD = PREFACE[:18]
#: The largest request body an ``Upgrade: h2c`` request may carry (it is read whole before
#: the switch); a larger one, or a chunked one, is served as HTTP/1.1.
UPGRADE_BODY_LIMIT = 256 * 1024
_BAD_UPGRADE = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
_SWITCHING = b"HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: h2c\r\n\r\n"


def prior_knowledge(conn: Any, exc: ProtocolError) -> bytes | None:
    """The bytes received so far if the HTTP/1.1 parser ``conn`` refused the HTTP/2
    preface (``exc``), else None. Our parser leaves the refused head in ``trailing_data``;
    h11 consumed it (a 505 followed by the preface's rest: ``SM``, blank line)."""
    data = conn.trailing_data
    if data.startswith(PREFACE_HEAD):
        return data
    if exc.status_code == 505 and data.startswith(PREFACE[len(PREFACE_HEAD) :]):
        return PREFACE_HEAD + data
    return None


def hand_over_to_h2(driver: HTTP1Driver, data: bytes) -> None:
    """The connection starts with the HTTP/2 preface: an ``HTTP2Driver`` takes it, with
    the bytes read so far."""
    w = driver.w
    driver.closed = True  # the HTTP/1.1 driver is done; connection_lost goes to the new one
    w.connections.discard(driver)
    if driver.read_paused:
        driver.transport.resume_reading()  # type: ignore[union-attr]
    HTTP2Driver(w).take_over(driver.transport, driver.info, data)  # type: ignore[arg-type]


def h2c_upgrade_wanted(driver: HTTP1Driver, request: H1Request) -> bool:
    """Whether ``request`` upgrades to HTTP/2 (``Upgrade: h2c``, one ``HTTP2-Settings``
    named in ``Connection``, on cleartext, HTTP/2 enabled, a body of known length within
    ``UPGRADE_BODY_LIMIT``). If so the driver reads its body into ``h2c_body`` and then
    switches (``switch_to_h2c``)."""
    w = driver.w
    if w.http2 is None or driver.info.scheme != "http" or driver.cycle is not None:
        return False
    if b"h2c" not in comma_tokens(driver.conn.upgrade):
        return False
    settings = [value for name, value in request.headers if name == b"http2-settings"]
    connection: list[bytes] = []
    for name, value in request.headers:
        if name == b"connection":
            connection += comma_tokens(value)
    if len(settings) != 1 or b"http2-settings" not in connection or b"upgrade" not in connection:
        return False
    if request.chunked or (request.content_length or 0) > UPGRADE_BODY_LIMIT:
        return False
    driver.request = request
    driver.h2c_body = []
    driver.idle_since = 0.0
    driver.request_read = not request.has_body
    if request.has_body:
        driver.discarding = True  # (its body goes to h2c_body: HTTP1Driver._on_body)
        driver.discarded = 0
    else:
        w.loop.call_soon(switch_to_h2c, driver)
    return True


def switch_to_h2c(driver: HTTP1Driver) -> None:
    """The upgrade request is read: answer ``101`` and let an ``HTTP2Driver`` serve it as
    stream 1 (an invalid ``HTTP2-Settings`` is a 400 instead)."""
    if driver.closed:
        return
    request = driver.request
    body = driver.h2c_body or []
    driver.h2c_body = None
    settings = next(value for name, value in request.headers if name == b"http2-settings")  # type: ignore[union-attr]
    h2request = upgraded_request(request)  # type: ignore[arg-type]
    h2 = HTTP2Driver(driver.w)
    try:
        h2.prepare_upgrade(settings, h2request)
    except ProtocolError as exc:
        logger.info("invalid h2c upgrade from %s: %s", driver.info.client, exc)
        driver.transport.write(_BAD_UPGRADE)  # type: ignore[union-attr]
        driver.transport.close()  # type: ignore[union-attr]
        return
    transport = driver.transport
    data = driver.conn.trailing_data
    transport.write(_SWITCHING)  # type: ignore[union-attr]
    driver.closed = True
    driver.w.connections.discard(driver)
    if driver.read_paused:
        transport.resume_reading()  # type: ignore[union-attr]
    h2.take_upgrade(transport, driver.info, h2request, body, data)  # type: ignore[arg-type]
