"""Differential test: our HTTP/1.1 parser against h11, on generated and mutated requests.

Both parsers get the same byte stream (one to three pipelined requests, then EOF) cut
into random pieces. Required:

- whatever h11 rejects, ours rejects too, at the same request or an earlier one;
- what both accept gives the same events: method, target, authority, version, headers,
  body bytes, keep-alive, expect-continue, framing;
- valid generated requests are accepted, and give what was generated;
- ours gives the same result however the stream is cut.

Two differences are deliberate and modelled here rather than hidden (see
``h11_adapter.py``): ours ignores empty lines before a request line (RFC 9112 §2.2),
so the reference is h11 fed the stream with those lines removed; and h11 never keeps
an HTTP/1.0 connection alive, so an HTTP/1.0 keep-alive request is where the
comparison stops.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ftserver.protocols.errors import ProtocolError
from ftserver.protocols.events import CONNECTION_CLOSED, END_OF_MESSAGE, NEED_DATA, PAUSED, Data
from ftserver.protocols.http1 import H1Request, HTTP11Connection
from ftserver.protocols.http1.h11_adapter import H11Connection
from ftserver.protocols.limits import Limits

LIMITS = Limits()
SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


# --- running a connection over a stream ---------------------------------------------------


@dataclass(frozen=True)
class Message:
    method: str
    target: bytes
    authority: bytes | None
    http_version: str
    headers: tuple[tuple[bytes, bytes], ...]
    keep_alive: bool
    expect_continue: bool
    content_length: int | None
    chunked: bool
    body: bytes


@dataclass(frozen=True)
class Outcome:
    messages: tuple[Message, ...]
    end: str  # "error", "closed" (EOF at a boundary) or "close" (a request ended keep-alive)


def run(conn: Any, pieces: list[bytes]) -> Outcome:
    """Feed ``pieces`` then EOF, answering each request with an empty 404."""
    pending = list(pieces)
    messages: list[Message] = []
    request: H1Request | None = None
    body = b""
    eof = False
    while True:
        try:
            event = conn.next_event()
        except ProtocolError:
            return Outcome(tuple(messages), "error")
        if event is NEED_DATA:
            assert not eof, "NEED_DATA after EOF"
            if pending:
                conn.receive_data(pending.pop(0))
            else:
                conn.receive_data(b"")
                eof = True
        elif isinstance(event, H1Request):
            request, body = event, b""
        elif isinstance(event, Data):
            assert event.data, "empty Data event"
            body += event.data
        elif event is END_OF_MESSAGE:
            assert request is not None
            messages.append(Message(
                request.method, request.target, request.authority, request.http_version,
                tuple(request.headers), request.keep_alive, request.expect_continue, request.content_length,
                request.chunked, body,
            ))
        elif event is PAUSED:
            # 404, not 200: a 2xx to CONNECT would switch h11 to a tunnel.
            conn.send_response(404, [(b"content-length", b"0")], None)
            conn.send_end()
            if not conn.keep_alive:
                return Outcome(tuple(messages), "close")
            conn.start_next_cycle()
        else:
            assert event is CONNECTION_CLOSED
            return Outcome(tuple(messages), "closed")


class LenientH11:
    """The reference: h11 (through our adapter), plus RFC 9112 §2.2's "ignore empty
    lines before a request line", which h11 does not do: at each message start, CRLFs
    are held back and dropped until another byte shows up."""

    def __init__(self) -> None:
        self._conn = H11Connection(LIMITS)
        self._held = b""
        self._at_start = True
        self._eof = False

    def receive_data(self, data: bytes) -> None:
        if not data:
            self._eof = True
            if self._at_start:
                self._at_start = False
                self._conn.receive_data(self._held)  # b"" or a lone CR: h11 judges it
                self._held = b""
            self._conn.receive_data(b"")
        elif self._at_start:
            held = self._held + data
            while held.startswith(b"\r\n"):
                held = held[2:]
            if held in (b"", b"\r"):
                self._held = held
            else:
                self._at_start = False
                self._held = b""
                self._conn.receive_data(held)
        else:
            self._conn.receive_data(data)

    def next_event(self) -> Any:
        if self._at_start and not self._eof:
            event = self._conn.next_event()
            assert event is NEED_DATA  # nothing was given to h11 for this message yet
            return event
        return self._conn.next_event()

    def send_response(self, status: int, headers: list[tuple[bytes, bytes]], date: bytes | None) -> bytes:
        return self._conn.send_response(status, headers, date)

    def send_end(self) -> bytes:
        return self._conn.send_end()

    @property
    def keep_alive(self) -> bool:
        return self._conn.keep_alive

    def start_next_cycle(self) -> None:
        # A fresh h11 connection gets the pipelined bytes through the same filter.
        rest = self._conn.trailing_data
        self._conn.start_next_cycle()
        self._conn = H11Connection(LIMITS)
        self._at_start = True
        eof = self._eof
        self._eof = False
        if rest:
            self.receive_data(rest)
        if eof:
            self.receive_data(b"")


def check_against_h11(stream: bytes, cuts: list[int]) -> tuple[Outcome, Outcome]:
    pieces = split(stream, cuts)
    mine = run(HTTP11Connection(LIMITS), pieces)
    assert run(HTTP11Connection(LIMITS), [stream]) == mine, "result depends on how the stream is cut"
    reference = run(LenientH11(), pieces)

    event(f"ours: {mine.end} after {len(mine.messages)}, h11: {reference.end} after {len(reference.messages)}")
    assert all(not m.keep_alive for m in reference.messages if m.http_version == "1.0")
    common = min(len(mine.messages), len(reference.messages))
    assert comparable(mine.messages[:common]) == comparable(reference.messages[:common])
    if mine.end == "error" and len(mine.messages) <= len(reference.messages):
        return mine, reference  # ours rejected at the same request as h11, or earlier
    if (
        reference.end == "close"
        and len(mine.messages) >= len(reference.messages)
        and reference.messages[-1].http_version == "1.0"
        and mine.messages[len(reference.messages) - 1].keep_alive
    ):
        return mine, reference  # HTTP/1.0 keep-alive: h11 stops here, ours goes on
    assert mine.end == reference.end and len(mine.messages) == len(reference.messages)
    return mine, reference


def comparable(messages: tuple[Message, ...]) -> list[Message]:
    """Messages without what h11 changes: HTTP/1.0 keep-alive (h11 always says False)
    and the case of Transfer-Encoding values (h11 lower-cases them, ours keeps them)."""
    return [
        replace(
            m,
            keep_alive=m.keep_alive and m.http_version == "1.1",
            headers=tuple((n, v.lower() if n == b"transfer-encoding" else v) for n, v in m.headers),
        )
        for m in messages
    ]


def split(stream: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(stream)) for c in cuts} | {0, len(stream)})
    return [stream[a:b] for a, b in zip(points, points[1:]) if b > a] or [b""]


# --- generating requests ------------------------------------------------------------------

TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
tokens = st.text(TCHARS, min_size=1, max_size=8).map(str.encode)
# Field values as sent: visible characters and obs-text, single inner SP/HTAB.
value_chars = st.sampled_from([bytes([b]) for b in [*range(0x21, 0x7F), 0x80, 0xA0, 0xE9, 0xFF]])
words = st.lists(value_chars, min_size=1, max_size=6).map(b"".join)
values = st.lists(words, max_size=3).flatmap(
    lambda ws: st.lists(st.sampled_from([b" ", b"\t", b" \t "]), min_size=len(ws), max_size=len(ws)).map(
        lambda seps: b"".join(w + s for w, s in zip(ws, seps)).rstrip(b" \t")
    )
)
ows = st.sampled_from([b"", b" ", b"  ", b"\t", b" \t"])
targets = st.sampled_from(
    [b"/", b"/a/b?c=d&e=%20f", b"/~u/x.html", b"//double", b"http://example.com/x", b"/q?x=:@!$'()*+,;",
     b"HTTPS://a.example:81?q"]
)
#: The authority of each absolute-form target, which wins over Host (RFC 9112 §3.2.2).
TARGET_AUTHORITY = {b"http://example.com/x": b"example.com", b"HTTPS://a.example:81?q": b"a.example:81"}


@dataclass(frozen=True)
class Generated:
    raw: bytes
    message: Message


@st.composite
def requests(draw: st.DrawFn) -> Generated:
    """One valid request, and the Message both parsers should make of it."""
    version = draw(st.sampled_from(["1.1", "1.1", "1.1", "1.0"]))
    method = draw(st.sampled_from([b"GET", b"POST", b"PUT", b"HEAD", b"DELETE", b"OPTIONS", b"PATCH", b"X-Y"]))
    target = draw(targets)
    if method == b"OPTIONS" and draw(st.booleans()):
        target = b"*"
    fields: list[tuple[bytes, bytes]] = []
    host = None
    if version == "1.1" or draw(st.booleans()):
        host = b"example.com:8000"
        fields.append((draw(st.sampled_from([b"Host", b"host", b"HOST"])), host))
    fields += draw(st.lists(st.tuples(tokens, values), max_size=5).map(
        lambda fs: [(n, v) for n, v in fs if n.lower() not in MANAGED]
    ))
    # Mostly no Connection field, so that pipelines go on.
    options: list[bytes] = draw(st.one_of(
        st.just([]), st.just([]),
        st.lists(st.sampled_from([b"close", b"keep-alive", b"Upgrade", b"Keep-Alive"]), max_size=2),
    ))
    if options:
        fields.append((b"Connection", b", ".join(options)))
    expect = version == "1.1" and draw(st.booleans())
    if expect:
        fields.append((b"Expect", draw(st.sampled_from([b"100-continue", b"100-Continue"]))))
    framing = draw(st.sampled_from(["none", "length", "chunked"] if version == "1.1" else ["none", "length"]))
    body = draw(st.binary(max_size=40)) if framing != "none" else b""
    tail = b""
    content_length = None
    if framing == "length":
        content_length = len(body)
        fields.append((b"Content-Length", draw(st.sampled_from([b"", b"0", b"00"])) + b"%d" % len(body)))
        tail = body
    elif framing == "chunked":
        fields.append((b"Transfer-Encoding", draw(st.sampled_from([b"chunked", b"Chunked", b"CHUNKED"]))))
        tail = draw(chunked_body(body))
    draw(st.randoms()).shuffle(fields)
    head = method + b" " + target + b" HTTP/" + version.encode() + b"\r\n"
    head += b"".join(n + b":" + draw(ows) + v + draw(ows) + b"\r\n" for n, v in fields)
    lowered = [o.lower() for o in options]
    keep_alive = b"close" not in lowered and (version == "1.1" or b"keep-alive" in lowered)
    parsed = [(n.lower(), v) for n, v in fields]
    if target in TARGET_AUTHORITY:  # it replaces Host, in the fields too
        host = TARGET_AUTHORITY[target]
        parsed = [(n, host if n == b"host" else v) for n, v in parsed]
        if (b"host", host) not in parsed:
            parsed.append((b"host", host))
    message = Message(
        method.decode(), target, host, version, tuple(parsed), keep_alive, expect,
        content_length, framing == "chunked", body,
    )
    return Generated(head + b"\r\n" + tail, message)


MANAGED = {b"host", b"connection", b"expect", b"content-length", b"transfer-encoding", b"upgrade"}


@st.composite
def chunked_body(draw: st.DrawFn, body: bytes) -> bytes:
    out = b""
    rest = body
    while rest:
        size = draw(st.integers(1, len(rest)))
        ext = draw(st.sampled_from([b"", b";a=b", b";x", b';q="1 2"']))
        digits = draw(st.sampled_from([b"%x", b"%X", b"0%x"])) % size
        out += digits + ext + b"\r\n" + rest[:size] + b"\r\n"
        rest = rest[size:]
    out += b"0\r\n"
    trailers = draw(st.lists(st.tuples(tokens, values), max_size=2))
    out += b"".join(n + b": " + v + b"\r\n" for n, v in trailers)
    return out + b"\r\n"


# Mutations aimed at the rules: line endings, folding, NUL/controls, framing fields,
# versions, chunk syntax; plus random bytes.
SNIPPETS = [
    b"\r", b"\n", b"\r\n", b"\r\n\r\n", b"\x00", b" ", b"\t", b":", b"\r\n ", b"\r\n\t", b"\x01", b"\x7f", b"\xff",
    b"\x0b", b";", b",", b"0", b"f", b"-", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.1 ", b"*",
    b"Content-Length: 5\r\n", b"Content-Length: 0\r\n", b"Content-Length: 1, 1\r\n", b"Content-Length: +3\r\n",
    b"Transfer-Encoding: chunked\r\n", b"Transfer-Encoding: gzip, chunked\r\n", b"Transfer-Encoding: chunked, \r\n",
    b"Transfer-Encoding:\tchunked\r\n", b"Host: x\r\n", b"Connection: close\r\n", b"Expect: 100-continue\r\n",
    b"0\r\n\r\n", b"5\r\nhello\r\n", b"ffffffffffffffffff\r\n", b"X: y\r\n z\r\n",
]
mutation = st.tuples(
    st.sampled_from(["insert", "insert", "delete", "replace"]),
    st.integers(0, 10_000),
    st.one_of(st.sampled_from(SNIPPETS), st.binary(min_size=1, max_size=3)),
)


def mutate(raw: bytes, edits: list[tuple[str, int, bytes]]) -> bytes:
    for kind, where, snippet in edits:
        at = where % (len(raw) + 1)
        if kind == "insert":
            raw = raw[:at] + snippet + raw[at:]
        elif kind == "delete":
            raw = raw[:at] + raw[at + len(snippet) :]
        else:
            raw = raw[:at] + snippet + raw[at + len(snippet) :]
    return raw


cuts = st.lists(st.integers(0, 4000), max_size=8)


# --- the properties -------------------------------------------------------------------------


@SETTINGS
@given(st.lists(requests(), min_size=1, max_size=3), cuts, st.sampled_from([b"", b"\r\n", b"\r\n\r\n"]))
def test_valid_requests_are_accepted_alike(batch: list[Generated], cut_at: list[int], before: bytes) -> None:
    stream = before + b"".join(g.raw for g in batch)
    mine, reference = check_against_h11(stream, cut_at)
    assert mine.end != "error" and reference.end != "error"
    # Up to the first request that ends keep-alive, ours made exactly what was generated.
    expected = []
    for generated in batch:
        expected.append(generated.message)
        if not generated.message.keep_alive:
            break
    assert list(mine.messages) == expected
    assert mine.end == ("closed" if expected[-1].keep_alive else "close")


@SETTINGS
@given(st.lists(requests(), min_size=1, max_size=3), st.lists(mutation, min_size=1, max_size=3), cuts)
def test_mutated_requests_never_accepted_where_h11_rejects(
    batch: list[Generated], edits: list[tuple[str, int, bytes]], cut_at: list[int]
) -> None:
    stream = mutate(b"".join(g.raw for g in batch), edits)
    check_against_h11(stream, cut_at)


framing_fields = st.lists(
    st.sampled_from([
        b"Content-Length: 3", b"Content-Length: 03", b"Content-Length: 3 ", b"Content-Length:3,3",
        b"Content-Length: 4", b"content-length: 3", b"Transfer-Encoding: chunked", b"Transfer-Encoding: CHUNKED",
        b"Transfer-Encoding: identity", b"Transfer-Encoding: gzip", b"Transfer-Encoding: chunked, chunked",
        b"Transfer-Encoding: ", b"Transfer-Encoding: chunked\r\n x", b"Transfer-Encoding : chunked",
        b"Transfer-Encoding:\x0bchunked",
    ]),
    max_size=3,
)


@SETTINGS
@given(
    st.sampled_from([b"1.1", b"1.0"]),
    framing_fields,
    st.sampled_from([b"abc", b"3\r\nabc\r\n0\r\n\r\n", b"3;x\r\nabc\r\n0\r\nT: 1\r\n\r\n", b"", b"0\r\n\r\n"]),
    cuts,
)
def test_framing_combinations(version: bytes, fields: list[bytes], body: bytes, cut_at: list[int]) -> None:
    """Content-Length / Transfer-Encoding combinations: the request smuggling ground."""
    head = b"POST / HTTP/" + version + b"\r\nHost: a\r\n" + b"".join(f + b"\r\n" for f in fields) + b"\r\n"
    follow_up = b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n"
    check_against_h11(head + body + follow_up, cut_at)


# --- rules both parsers enforce where h11 alone is lenient -------------------------------------

# (request stream, status both answer). Each is followed by a request that must not be served.
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
CHUNKED_HEAD = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
HOSTILE = [
    # RFC 9112 §3.2, RFC 9110 §7.2: Host = uri-host [ ":" port ].
    *[(b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n", 400)
      for host in (b"exa mple.com", b"x/y", b"user@evil", b"a, b", b"a:b", b"%zz", b"[::1", b"a?b", b"a#b")],
    (b"GET / HTTP/1.0\r\nHost: a b\r\n\r\n", 400),
    (b"GET http://a.example/ HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nX: y\r\n\r\n", 400),  # no Host in HTTP/1.1
    # RFC 9112 §3.2.2 and RFC 9110 §4.2.4: the authority that replaces Host obeys its rules.
    (b"GET http://u@a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n", 400),
    (b"GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    (b"GET http://a b/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    (b"GET relative HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    (b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    # RFC 9112 §7.1.1: a quoted-string in a chunk-ext ends on its line.
    (CHUNKED_HEAD + b'1;a="\r\nX\r\n0\r\n\r\n', 400),
    (CHUNKED_HEAD + b'1;a="x\r\nX\r\n0\r\n\r\n', 400),
    (CHUNKED_HEAD + b"1;a\rb\r\nX\r\n0\r\n\r\n", 400),
    (CHUNKED_HEAD + b"1 \r\nX\r\n0\r\n\r\n", 400),
    # A chunk-size beyond the body limit is a 413 before its data (h11 would wait for it).
    (CHUNKED_HEAD + b"ffffffffffffffff\r\n", 413),
    (CHUNKED_HEAD + b"1\r\nX\r\nfffffffffffffff\r\n", 413),
    # RFC 9112 §2.2: CRLF only. §5.2: no obs-fold (h11 unfolds it into the previous field).
    (b"GET / HTTP/1.1\nHost: a\n\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: a\r\nX: y\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: a\r\nX: y\r\n\tContent-Length: 3\r\n\r\nabc", 400),
    # RFC 9110 §5.5: no control characters in field values.
    *[(b"GET / HTTP/1.1\r\nHost: a\r\nX: " + value + b"\r\n\r\n", 400) for value in (b"a\x01b", b"a\x7f", b"\x1bc")],
    # RFC 9112 §6.3: one Content-Length, 1*DIGIT (h11 merges equal ones).
    (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", 400),
    (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\nx", 400),
    # RFC 9110 §6.5.1: no framing fields in trailers; the trailer section obeys the field rules.
    (CHUNKED_HEAD + b"1\r\nx\r\n0\r\nContent-Length: 3\r\n\r\n", 400),
    (CHUNKED_HEAD + b"1\r\nx\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    (CHUNKED_HEAD + b"1\r\nx\r\n0\r\nX: a\x01\r\n\r\n", 400),
    (CHUNKED_HEAD + b"1\r\nx\r\n0\r\nX: a\nY: b\r\n\r\n", 400),
    (CHUNKED_HEAD + b"1\r\nx\r\n0\r\nX: a\r\n b\r\n\r\n", 400),
]
LIMITED = Limits(max_body_size=1 << 20)


@pytest.mark.parametrize("impl", [HTTP11Connection, H11Connection], ids=["ours", "h11"])
@pytest.mark.parametrize(("raw", "status"), HOSTILE)
@pytest.mark.parametrize("pieces", ["whole", "bytewise"])
def test_both_parsers_reject(impl: Any, raw: bytes, status: int, pieces: str) -> None:
    """``--http1 h11`` is never the laxer mode: what ours rejects here, it rejects too,
    with the same status, whole or trickled, and serves nothing after it."""
    stream = raw + SMUGGLED
    chunks = [stream] if pieces == "whole" else [stream[i : i + 1] for i in range(len(stream))]
    conn = impl(LIMITED)
    targets = []
    with pytest.raises(ProtocolError) as info:
        for chunk in chunks:
            conn.receive_data(chunk)
            while (event := conn.next_event()) is not NEED_DATA and event is not PAUSED:
                if isinstance(event, H1Request):
                    targets.append(event.target)
    assert info.value.status_code == status
    assert b"/smuggled" not in targets
