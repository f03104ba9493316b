"""RSGI's connection scope of an HTTP request: ``Scope`` and its ``Headers`` (spec, "HTTP
connection scope"; Granian 2.7.9 where the spec is silent)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from ftserver.interfaces.stream import split_target

if TYPE_CHECKING:
    from ftserver.interfaces.stream import ConnectionInfo
    from ftserver.protocols.events import Request

RSGI_VERSION = "1.6"


class Headers:
    """The request headers of a scope (spec, "HTTP connection scope": "a mapping-like object,
    where keys is the header name, and value is the header value").

    Names are lower-case (the parser lower-cases them) and lookups lower-case the key, so
    ``get("Content-Type")`` works. As in Granian: ``get``/``[]`` give the first value of a
    repeated field, ``get_all`` every value, ``keys()``/``len``/iteration the distinct names,
    ``values()``/``items()`` every field in the order received. Values are decoded as
    ISO-8859-1, so every byte survives (unlike Granian, which leaves out fields whose value
    is not visible ASCII).
    """

    __slots__ = ("_fields", "_index")

    def __init__(self, fields: list[tuple[bytes, bytes]]) -> None:
        self._fields = fields
        self._index: dict[str, list[str]] | None = None

    def _build(self) -> dict[str, list[str]]:
        index: dict[str, list[str]] = {}
        for name, value in self._fields:
            key = name.decode("latin-1")
            values = index.get(key)
            if values is None:
                index[key] = [value.decode("latin-1")]
            else:
                values.append(value.decode("latin-1"))
        self._index = index
        return index

    def get(self, key: str, default: Any = None) -> Any:
        index = self._index
        if index is None:
            index = self._build()
        values = index.get(key.lower()) if type(key) is str else None
        return values[0] if values else default

    def get_all(self, key: str) -> list[str]:
        index = self._index
        if index is None:
            index = self._build()
        values = index.get(key.lower()) if type(key) is str else None
        return list(values) if values else []

    def __getitem__(self, key: str) -> str:
        index = self._index
        if index is None:
            index = self._build()
        values = index.get(key.lower()) if type(key) is str else None
        if not values:
            raise KeyError(key)
        return values[0]

    def __contains__(self, key: object) -> bool:
        index = self._index
        if index is None:
            index = self._build()
        return type(key) is str and key.lower() in index

    def keys(self) -> list[str]:
        index = self._index
        if index is None:
            index = self._build()
        return list(index)

    def values(self) -> list[str]:
        return [value.decode("latin-1") for _, value in self._fields]

    def items(self) -> list[tuple[str, str]]:
        return [(name.decode("latin-1"), value.decode("latin-1")) for name, value in self._fields]

    def __len__(self) -> int:
        index = self._index
        if index is None:
            index = self._build()
        return len(index)

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __repr__(self) -> str:
        return f"Headers({self.items()!r})"


def format_address(address: tuple[Any, ...] | None) -> str:
    """``{address}:{port}`` (spec, "HTTP connection scope"); an IPv6 address in brackets, as
    Granian (Rust's ``SocketAddr``) writes it; a Unix socket is its path."""
    if not address:
        return ""
    host, port = address[0], address[1]
    if port is None:
        return str(host)
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


class Scope:
    """The connection scope of one HTTP request (spec, "HTTP connection scope").

    - ``proto``: ``"http"``; ``rsgi_version``: ``"1.6"`` (Granian 2.7.9's);
    - ``http_version``: ``"1"`` (HTTP/1.0), ``"1.1"`` or ``"2"``;
    - ``server``/``client``: ``"{address}:{port}"``; ``scheme``: ``"http"`` or ``"https"``;
    - ``method``: upper-case as sent; ``path``: the request target's path, percent-decoded
      (as Granian does; invalid UTF-8 becomes U+FFFD), without the query; an absolute-form
      target gives its path; ``query_string``: the raw text after ``?``;
    - ``headers``: ``Headers``; ``authority``: HTTP/2's ``:authority`` (or ``host``), ``None``
      on HTTP/1.x (spec: "empty on HTTP versions prior to 2"; Granian gives ``None``).

    RSGI has no ``root_path``: ``--root-path`` does not change what an RSGI app sees.
    """

    __slots__ = ("http_version", "method", "scheme", "path", "query_string", "_request", "_info", "_headers")

    proto = "http"
    rsgi_version = RSGI_VERSION

    def __init__(self, request: Request, info: ConnectionInfo) -> None:
        version = request.http_version
        self.http_version = "1" if version == "1.0" else version
        self.method = request.method
        self.scheme = info.scheme
        target = request.target
        if target[:1] == b"/":  # origin-form, the usual one
            raw_path, _, query = target.partition(b"?")
        else:
            raw_path, query = split_target(target)
        path = raw_path.decode("latin-1")
        self.path = unquote(path) if "%" in path else path
        self.query_string = query.decode("latin-1")
        self._request = request
        self._info = info
        self._headers: Headers | None = None

    @property
    def headers(self) -> Headers:
        headers = self._headers
        if headers is None:
            headers = self._headers = Headers(self._request.headers)
        return headers

    @property
    def authority(self) -> str | None:
        request = self._request
        if request.http_version != "2" or request.authority is None:
            return None
        return request.authority.decode("latin-1")

    @property
    def server(self) -> str:
        return format_address(self._info.server)

    @property
    def client(self) -> str:
        return format_address(self._info.client)

    def __repr__(self) -> str:
        return f"Scope({self.method} {self.path!r} HTTP/{self.http_version})"
