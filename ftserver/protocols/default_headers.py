"""``--header NAME:VALUE``: response fields the server adds to every response, validated once
and encoded once, so that a response pays one concatenation for them (nothing when none
are given). A field the application sets itself wins: the default of that name is left out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["MANAGED", "DefaultHeaders", "parse_header", "response_defaults"]

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: field-value = *field-content; no CR, LF, NUL nor other controls but HTAB (RFC 9110 §5.5).
_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")

#: Fields the server writes itself from the response's framing and the connection's state
#: (and ``date``, with ``--date-header``): a default for them would contradict it.
MANAGED = frozenset(
    ("content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "proxy-connection", "te", "trailer", "date")
)


def parse_header(text: str | tuple[str, str]) -> tuple[str, str]:
    """``"Name: value"`` (or a ``(name, value)`` pair) as ``(lower-case name, value)``;
    ``ValueError`` naming what is wrong. ``server`` is allowed: it replaces ``ftserver``."""
    if isinstance(text, str):
        name, sep, value = text.partition(":")
        if not sep:
            raise ValueError(f"{text!r} is not NAME:VALUE")
    else:
        name, value = text
    name, value = name.strip(), value.strip(" \t")
    if not _TOKEN.fullmatch(name):
        raise ValueError(f"{name!r} is not a header name (a token: letters, digits and !#$%&'*+-.^_`|~)")
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"the value of {name!r} is not Latin-1 text") from None
    if not _VALUE.fullmatch(value):
        raise ValueError(f"the value of {name!r} holds a control character (CR, LF, NUL...)")
    lowered = name.lower()
    if lowered in MANAGED:
        raise ValueError(f"{lowered!r} is set by the server itself (framing, connection, --date-header)")
    return lowered, value


class DefaultHeaders:
    """The default response fields of one worker thread (each thread builds its own: no
    object shared between threads on the response path).

    ``fields``: ``(name, value)`` pairs, names lower-case; ``names``: their set; ``lines``:
    the HTTP/1.1 field lines, ``b"name: value\\r\\n"`` each, joined once.
    """

    __slots__ = ("fields", "names", "lines")

    def __init__(self, fields: Iterable[tuple[str, str]]) -> None:
        self.fields = tuple((name.encode("ascii"), value.encode("latin-1")) for name, value in fields)
        self.names = frozenset(name for name, _ in self.fields)
        self.lines = b"".join(b"%b: %b\r\n" % field for field in self.fields)

    def lines_without(self, headers: Iterable[tuple[bytes, bytes]]) -> bytes:
        """``lines`` less the fields whose names ``headers`` (the application's) hold."""
        own = {name.lower() for name, _ in headers} & self.names
        if not own:
            return self.lines
        return b"".join(b"%b: %b\r\n" % field for field in self.fields if field[0] not in own)

    def fields_without(self, names: Iterable[bytes]) -> list[tuple[bytes, bytes]]:
        """``fields`` less those named in ``names`` (lower-case)."""
        own = self.names.intersection(names)
        return [field for field in self.fields if field[0] not in own]


def response_defaults(headers: Iterable[str | tuple[str, str]], server_header: bool) -> tuple[bytes | None, DefaultHeaders | None]:
    """The ``server`` value and the ``DefaultHeaders`` of a worker thread, from the
    ``--header`` fields and ``--server-header``: a ``--header server:...`` replaces
    ``ftserver`` (and is sent even with ``--no-server-header``, as Uvicorn does)."""
    server: str | None = "ftserver" if server_header else None
    others = []
    for name, value in map(parse_header, headers):
        if name == "server":
            server = value
        else:
            others.append((name, value))
    return (None if server is None else server.encode("latin-1")), (DefaultHeaders(others) if others else None)
