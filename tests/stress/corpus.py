"""The hostile corpus: raw HTTP/1.1 requests a strict server must refuse, sent on raw sockets.

Each case is one byte string sent on a new connection, whole or trickled byte by byte. What comes
back is parsed into responses. A case passes when the server never answers 5xx (except where the
RFC names one: 505 for a version, 501 for an unknown transfer coding), never answers the smuggled
request (``/smuggled``), answers a "reject" case with a 4xx or a close and never a 2xx, answers the
valid controls ("ok") with the expected number of 200s, and closes or answers within a bound
(a connection left hanging on a malformed request is a failure).
"""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
IDLE_BOUND = 6.0  # seconds after the last byte sent by which the server must have answered or closed


@dataclass(frozen=True)
class Case:
    """One hostile request. ``kind``: reject | ok (``count`` 200s) | either (200 or 4xx) | authority."""

    name: str
    data: bytes
    kind: str = "reject"
    count: int = 1
    allowed_5xx: frozenset[int] = frozenset()


def post(headers: str, body: bytes, target: str = "/echo", version: str = "1.1") -> bytes:
    return f"POST {target} HTTP/{version}\r\nHost: a\r\n{headers}\r\n".encode() + body


def get(headers: str = "Host: a\r\n", target: str = "/", version: str = "1.1", line: bytes | None = None) -> bytes:
    start = line if line is not None else f"GET {target} HTTP/{version}".encode()
    return start + b"\r\n" + headers.encode("latin-1") + b"\r\n"


def chunked(body: bytes, headers: str = "") -> bytes:
    return post("Transfer-Encoding: chunked\r\n" + headers, body)


CASES: list[Case] = [
    # Controls: valid requests, so a server that refuses everything does not pass.
    Case("ok_get", get(), "ok"),
    Case("ok_post_length", post("Content-Length: 5\r\n", b"hello"), "ok"),
    Case("ok_post_chunked_ext", chunked(b'5;a="b;c";d=e\r\nhello\r\n0\r\n\r\n'), "ok"),
    Case("ok_pipelined_two", get() + get(target="/small"), "ok", count=2),
    Case("ok_leading_crlf", b"\r\n" + get(), "either"),
    # Request smuggling: two framings, or framing the server must not guess at.
    Case("cl_te", post("Content-Length: 4\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n" + SMUGGLED)),
    Case("te_cl", post("Transfer-Encoding: chunked\r\nContent-Length: 4\r\n", b"0\r\n\r\n" + SMUGGLED)),
    Case("cl_te_smuggle_cl_first", post("Content-Length: 40\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n" + SMUGGLED)),
    Case("te_http10", post("Transfer-Encoding: chunked\r\n", b"0\r\n\r\n" + SMUGGLED, version="1.0")),
    Case("te_http10_with_cl", post("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", b"0\r\n\r\n" + SMUGGLED, version="1.0")),
    Case("cl_duplicate_differ", post("Content-Length: 5\r\nContent-Length: 6\r\n", b"hello!" + SMUGGLED)),
    Case("cl_list_differ", post("Content-Length: 5, 6\r\n", b"hello!" + SMUGGLED)),
    Case("cl_plus", post("Content-Length: +5\r\n", b"hello" + SMUGGLED)),
    Case("cl_negative", post("Content-Length: -1\r\n", b"hello" + SMUGGLED)),
    Case("cl_hex", post("Content-Length: 0x5\r\n", b"hello" + SMUGGLED)),
    Case("cl_inner_space", post("Content-Length: 1 2\r\n", b"hello" + SMUGGLED)),
    Case("cl_huge", post("Content-Length: 99999999999999999999999999\r\n", b"hello")),
    Case("cl_underscore", post("Content-Length: 1_0\r\n", b"hello" + SMUGGLED)),
    Case("cl_space_before_colon", post("Content-Length : 5\r\n", b"hello" + SMUGGLED)),
    Case("te_space_before_colon", post("Transfer-Encoding : chunked\r\nContent-Length: 5\r\n", b"0\r\n\r\n" + SMUGGLED)),
    Case("te_chunked_not_final", post("Transfer-Encoding: chunked, gzip\r\n", b"0\r\n\r\n" + SMUGGLED), allowed_5xx=frozenset({501})),
    Case("te_chunked_twice", post("Transfer-Encoding: chunked, chunked\r\n", b"0\r\n\r\n" + SMUGGLED), allowed_5xx=frozenset({501})),
    Case("te_xchunked", post("Transfer-Encoding: xchunked\r\n", b"0\r\n\r\n" + SMUGGLED), allowed_5xx=frozenset({501})),
    Case("te_obs_fold", post("Transfer-Encoding:\r\n chunked\r\n", b"0\r\n\r\n" + SMUGGLED), allowed_5xx=frozenset({501})),
    Case("obs_fold_then_cl", post("X-A: a\r\n Content-Length: 40\r\n", b"hello" + SMUGGLED)),
    Case("obs_fold_plain", get("Host: a\r\nX-A: a\r\n b\r\n"), "either"),
    Case("te_vertical_tab", post("Transfer-Encoding:\x0bchunked\r\n", b"0\r\n\r\n" + SMUGGLED), allowed_5xx=frozenset({501})),
    Case("te_nul", post("Transfer-Encoding: chunked\x00\r\n", b"0\r\n\r\n" + SMUGGLED), allowed_5xx=frozenset({501})),
    # Chunked bodies.
    Case("chunk_size_huge", chunked(b"ffffffffffffffff\r\nhello\r\n0\r\n\r\n")),
    Case("chunk_size_huge_long", chunked(b"1" + b"0" * 40 + b"\r\nhello\r\n0\r\n\r\n")),
    Case("chunk_size_negative", chunked(b"-5\r\nhello\r\n0\r\n\r\n")),
    Case("chunk_size_0x", chunked(b"0x5\r\nhello\r\n0\r\n\r\n")),
    Case("chunk_size_empty", chunked(b"\r\nhello\r\n0\r\n\r\n")),
    Case("chunk_size_not_hex", chunked(b"zz\r\nhello\r\n0\r\n\r\n")),
    Case("chunk_size_plus", chunked(b"+5\r\nhello\r\n0\r\n\r\n")),
    Case("chunk_ext_unterminated_quote", chunked(b'1;a="\r\nX\r\n0\r\n\r\n' + SMUGGLED)),
    Case("chunk_ext_bare_cr", chunked(b"5;a=b\rc\r\nhello\r\n0\r\n\r\n")),
    Case("chunk_data_too_long", chunked(b"3\r\nhello\r\n0\r\n\r\n")),
    Case("chunk_data_no_crlf", chunked(b"5\r\nhelloXX0\r\n\r\n")),
    Case("chunk_size_bare_lf", chunked(b"5\nhello\r\n0\r\n\r\n")),
    Case("chunk_data_bare_lf", chunked(b"5\r\nhello\n0\r\n\r\n")),
    Case("chunk_last_bare_lf", chunked(b"5\r\nhello\r\n0\n\n" + SMUGGLED)),
    Case("trailer_content_length", chunked(b"5\r\nhello\r\n0\r\nContent-Length: 40\r\n\r\n" + SMUGGLED)),
    Case("trailer_transfer_encoding", chunked(b"5\r\nhello\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n" + SMUGGLED)),
    Case("trailer_bare_lf", chunked(b"5\r\nhello\r\n0\r\nX-T: a\n\r\n" + SMUGGLED)),
    # Line endings and folding.
    Case("bare_lf_request_line", b"GET / HTTP/1.1\nHost: a\r\n\r\n"),
    Case("bare_lf_headers", b"GET / HTTP/1.1\r\nHost: a\nX-A: b\r\n\r\n"),
    Case("bare_lf_everywhere", b"GET / HTTP/1.1\nHost: a\n\n"),
    Case("bare_cr_request_line", b"GET / HTTP/1.1\rHost: a\r\n\r\n"),
    Case("bare_cr_in_value", get("Host: a\r\nX-A: a\rb\r\n")),
    Case("obs_fold_first_line", b"GET / HTTP/1.1\r\n Host: a\r\n\r\n"),
    # Host (RFC 9112 3.2).
    Case("host_missing_http11", get("")),
    Case("host_duplicate", get("Host: a\r\nHost: b\r\n")),
    Case("host_space", get("Host: exa mple.com\r\n")),
    Case("host_slash", get("Host: x/y\r\n")),
    Case("host_userinfo", get("Host: user@evil\r\n")),
    Case("host_comma", get("Host: a, b\r\n")),
    Case("host_bad_port", get("Host: a:b\r\n")),
    Case("host_ctl", get("Host: a\x01b\r\n")),
    Case("host_nul", get("Host: a\x00b\r\n")),
    Case("host_empty_http11", get("Host:\r\n"), "either"),
    Case("host_missing_http10", get("", version="1.0"), "either"),
    Case("absolute_form_other_host", get("Host: evil.example\r\n", target="http://good.example/abs"), "authority"),
    Case("absolute_form_no_host", get("", target="http://good.example/abs"), "authority"),
    # Request line.
    Case("http09", b"GET /\r\n\r\n"),
    Case("method_nul", get(line=b"G\x00ET / HTTP/1.1")),
    Case("method_space_twice", get(line=b"GET  / HTTP/1.1")),
    Case("target_space", get(line=b"GET /a b HTTP/1.1")),
    Case("target_ctl", get(line=b"GET /a\x01b HTTP/1.1")),
    Case("target_del", get(line=b"GET /a\x7fb HTTP/1.1")),
    Case("version_garbage", get(version="1.x")),
    Case("version_lower", get(line=b"GET / http/1.1")),
    Case("version_major", get(version="2.0"), allowed_5xx=frozenset({505})),
    Case("version_long", get(version="1.10"), allowed_5xx=frozenset({505})),
    Case("request_line_huge", get(target="/" + "a" * 20000)),
    # Header fields.
    Case("header_no_colon", get("Host: a\r\nNoColon\r\n")),
    Case("header_name_empty", get("Host: a\r\n: x\r\n")),
    Case("header_name_space", get("Host: a\r\nX A: b\r\n")),
    Case("header_name_ctl", get("Host: a\r\nX\x01A: b\r\n")),
    Case("header_name_nonascii", get("Host: a\r\nX\xe9: b\r\n")),
    Case("value_nul", get("Host: a\r\nX-A: a\x00b\r\n")),
    Case("value_ctl", get("Host: a\r\nX-A: a\x01b\r\n")),
    Case("value_del", get("Host: a\r\nX-A: a\x7fb\r\n")),
    Case("value_esc", get("Host: a\r\nX-A: a\x1bb\r\n")),
    Case("header_huge", get("Host: a\r\nX-A: " + "a" * 70000 + "\r\n")),
    Case("header_section_huge", get("Host: a\r\n" + "".join(f"X-{i}: {'a' * 1000}\r\n" for i in range(80)))),
    Case("too_many_fields", get("Host: a\r\n" + "".join(f"X-{i}: a\r\n" for i in range(200)))),
    Case("expect_unknown", post("Content-Length: 5\r\nExpect: teapot\r\n", b"hello"), "either", allowed_5xx=frozenset()),
    Case("content_length_on_get_smuggle", get("Host: a\r\nContent-Length: 5\r\nContent-Length: 40\r\n") + b"hello" + SMUGGLED),
]


@dataclass
class Outcome:
    """What one case got back, and whether that breaks a rule (``problem``; empty when fine)."""

    case: Case
    statuses: list[int]
    paths: list[bytes]
    hosts: list[bytes]
    closed: bool
    problem: str = ""


def parse_responses(data: bytes) -> tuple[list[int], list[dict[bytes, bytes]]]:
    """The responses in ``data`` (1xx skipped), each with its headers (lower-cased names)."""
    statuses, headers_list = [], []
    while data.startswith(b"HTTP/"):
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            break
        lines = head.split(b"\r\n")
        status = int(lines[0][9:12])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        if 100 <= status < 200:
            data = rest
            continue
        length = int(headers.get(b"content-length", b"0") or 0)
        if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            end = rest.find(b"\r\n0\r\n\r\n")
            rest = rest[end + 7:] if end >= 0 else b""
        else:
            rest = rest[length:]
        statuses.append(status)
        headers_list.append(headers)
        data = rest
    return statuses, headers_list


def exchange(port: int, data: bytes, trickle: bool) -> tuple[bytes, bool]:
    """Send ``data`` (whole or byte by byte), read to the close: (what came back, closed by the server)."""
    received = bytearray()
    with socket.create_connection(("127.0.0.1", port), timeout=IDLE_BOUND) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            if trickle:
                step = max(1, len(data) // 2000)  # the big cases in 2,000 pieces
                for i in range(0, len(data), step):
                    sock.sendall(data[i:i + step])
            else:
                sock.sendall(data)
        except OSError:
            pass  # the server answered and closed before the end: read what it said
        deadline = time.monotonic() + IDLE_BOUND
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                return bytes(received), False
            except OSError:
                return bytes(received), True  # reset: a close
            if not chunk:
                return bytes(received), True
            received += chunk
        return bytes(received), False


def judge(case: Case, data: bytes, closed: bool) -> Outcome:
    statuses, headers = parse_responses(data)
    outcome = Outcome(case, statuses, [h.get(b"x-path", b"") for h in headers], [h.get(b"x-host", b"") for h in headers], closed)
    fives = [s for s in statuses if s >= 500 and s not in case.allowed_5xx]
    oks = [s for s in statuses if 200 <= s < 300]
    if data and not statuses:
        outcome.problem = f"unparsable answer {data[:40]!r}"
    elif fives:
        outcome.problem = f"answered {fives[0]}"
    elif b"/smuggled" in outcome.paths:
        outcome.problem = "answered the smuggled request"
    elif case.kind == "ok":
        if oks != [200] * case.count:
            outcome.problem = f"expected {case.count} x 200, got {statuses}"
    elif case.kind == "reject" and oks:
        outcome.problem = f"served it ({statuses[0]})"
    elif case.kind == "authority" and oks and outcome.hosts[0] != b"good.example":
        outcome.problem = f"the app saw host {outcome.hosts[0]!r}, not the target's authority"
    elif len(statuses) > case.count:
        outcome.problem = f"{len(statuses)} responses"
    if not outcome.problem and not closed and not statuses:
        outcome.problem = f"no answer and no close within {IDLE_BOUND:.0f} s"
    return outcome


def run_corpus(port: int, trickle: bool, parallel: int = 16) -> list[Outcome]:
    def one(case: Case) -> Outcome:
        try:
            data, closed = exchange(port, case.data, trickle)
        except OSError as exc:
            return Outcome(case, [], [], [], True, f"could not connect: {exc}")
        return judge(case, data, closed)

    with ThreadPoolExecutor(parallel) as pool:
        return list(pool.map(one, CASES))
