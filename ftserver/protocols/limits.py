"""Size limits the protocol parsers enforce, with the status each one answers."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    """Request limits. ``None`` means unlimited.

    - ``max_request_line``: bytes in the request line, CRLF excluded (414 when exceeded);
    - ``max_header_bytes``: bytes in the whole header section (request line excluded) (431);
    - ``max_headers``: number of header fields (431);
    - ``max_body_size``: bytes of request body, declared or streamed (413).
    """

    max_request_line: int = 8190
    max_header_bytes: int = 65536
    max_headers: int = 100
    max_body_size: int | None = None
