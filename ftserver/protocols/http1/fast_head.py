"""The HTTP/1.1 parser's fast path (``HTTP11Connection.receive_request``): one read that
holds exactly one whole, bodiless HTTP/1.1 head, checked and split in a few C-level passes.
Anything it is not sure of is declined, and the full parser (``parser``) names the rule."""

from __future__ import annotations

import re
from typing import Final

from .common import FIELD_VALUE, HOST_RE, TOKEN
from .rules import request_keep_alive

__all__ = ["ParsedHead", "parse_whole_head"]

#: method, target, host, fields (lower-cased names), keep-alive.
ParsedHead = tuple[str, bytes, bytes, tuple[tuple[bytes, bytes], ...], bool]

# The fast path (``receive_request``): one read holding exactly one whole HTTP/1.1 head
# with an origin-form target, checked in one pass. Each field line is CRLF, a token, a
# colon, then field-value characters (OWS included), so a match is a valid head. CONNECT
# takes an authority-form target, whose rules are the full parser's.
_FAST_HEAD_RE: Final = re.compile(
    rb"(?!CONNECT )(" + TOKEN + rb") (/[\x21-\x7e]*) HTTP/1\.1((?:\r\n" + TOKEN + rb":[\t\x20-\x7e\x80-\xff]*)*)\r\n\r\n"
)
# Fields the fast path leaves to the full parser (framing, expectations, upgrades).
_FAST_PATH_EXCLUDED_RE: Final = re.compile(rb"\r\n(?:content-length|transfer-encoding|expect|upgrade):")
_match_fast_head: Final = _FAST_HEAD_RE.fullmatch
_search_excluded: Final = _FAST_PATH_EXCLUDED_RE.search
# In a valid field section a name is what follows a CRLF up to the colon, and the value
# the rest of the line without its outer OWS: two C-level scans give names (from the
# lower-cased section) and values, with no Python loop per field.
_field_names: Final = re.compile(rb"\r\n(" + TOKEN + rb"):").findall
_field_values: Final = re.compile(
    rb"\r\n" + TOKEN + rb":[ \t]*((?:" + FIELD_VALUE + rb"[\x21-\x7e\x80-\xff])?)"
).findall
_match_host: Final = HOST_RE.fullmatch


def parse_whole_head(data: bytes, fast_max: int, max_headers: int) -> ParsedHead | None:
    """``data`` parsed if it is one whole head the full parser would accept with the same
    result: HTTP/1.1, an origin-form target, one valid Host, no Content-Length,
    Transfer-Encoding, Expect or Upgrade, at most ``fast_max`` bytes and ``max_headers``
    fields; else None (``tests/protocols/test_fast_path.py`` compares them)."""
    if len(data) > fast_max:
        return None
    match = _match_fast_head(data)
    if match is None:
        return None
    method, target, fields = match.groups()
    lowered = fields.lower()
    if (
        _search_excluded(lowered) is not None
        or lowered.count(b"\r\nhost:") != 1
        or (len(fields) > max_headers * 4 and fields.count(b"\r\n") > max_headers)
    ):
        return None
    names = _field_names(lowered)
    values = _field_values(fields)
    host = values[names.index(b"host")]
    if _match_host(host) is None:
        return None  # the full parser names the rule (400)
    headers = tuple(zip(names, values))
    keep_alive = True
    if b"\r\nconnection:" in lowered:
        keep_alive = request_keep_alive(
            b", ".join([value for name, value in headers if name == b"connection"]), True
        )
    return method.decode("ascii"), target, host, headers, keep_alive

