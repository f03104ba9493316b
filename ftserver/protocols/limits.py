"""Size limits the protocol parsers enforce, with the status each one answers."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    """Request limits. ``None`` means unlimited.

    - ``max_request_line``: bytes in the request line, CRLF excluded (414 when exceeded);
    - ``max_header_bytes``: bytes in the whole header section (request line excluded) (431);
    - ``max_headers``: number of header fields (431);
    - ``max_body_size``: bytes of request body, declared or streamed (413);
    - ``max_chunk_overhead``: bytes of chunked framing (chunk-size lines and the CRLF after
      each chunk's data) a body may carry before the framing must not outweigh the data:
      past it, a body whose framing exceeds its data is refused (400). Each chunk costs
      the server a parser event whatever its size, so a body of many tiny chunks costs
      far more than its bytes (h2o's chunked decoder has the same rule, at 100 KB and 3/4
      framing). In ``--http1 h11`` mode, where h11 hides the chunk-size lines, each
      chunk counts as the least framing it can have (5 bytes).
    """

    max_request_line: int = 8190
    max_header_bytes: int = 65536
    max_headers: int = 100
    max_body_size: int | None = None
    max_chunk_overhead: int | None = 100 * 1024
