"""HTTP/1.0 and HTTP/1.1, sans-I/O: ``HTTP11Connection`` (our parser, ``parser.py``) and
``ResponseWriter`` (``writer.py``), its base, with the names the rest of ftserver uses.

The h11-based ``H11Connection`` (``--http1 h11``) is not re-exported: import it from
``h11_adapter`` only when asked for, so that h11 is imported only then.
"""

from .common import H1Request
from .parser import HTTP11Connection
from .writer import (
    HTTP_100_CONTINUE,
    ResponseWriter,
    reason_phrase,
    render_error_response,
    status_line,
)

__all__ = [
    "HTTP11Connection",
    "HTTP_100_CONTINUE",
    "H1Request",
    "ResponseWriter",
    "reason_phrase",
    "render_error_response",
    "status_line",
]
