"""Errors raised by the sans-I/O protocol code.

Each error names the rule it enforces and carries the status code the server should
answer with before closing the connection.
"""

from __future__ import annotations


class ProtocolError(Exception):
    """The peer broke the protocol. ``status_code`` is the response to send (then close)."""

    status_code: int = 400
    #: Fields the error response carries besides its own (a 426 names the version it wants).
    headers: tuple[tuple[bytes, bytes], ...] = ()

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        if status_code is not None:
            self.status_code = status_code


class BadRequest(ProtocolError):
    status_code = 400


class RequestLineTooLong(ProtocolError):
    status_code = 414


class HeaderTooLarge(ProtocolError):
    """Header section exceeds the configured size or count."""

    status_code = 431


class BodyTooLarge(ProtocolError):
    status_code = 413


class UnsupportedTransferCoding(ProtocolError):
    status_code = 501


class UnsupportedVersion(ProtocolError):
    status_code = 505


class LocalProtocolError(Exception):
    """We (i.e. the application) asked for something the protocol forbids.

    Raised by the send side: an invalid header, more body than the declared
    Content-Length, a response after the response was complete, and so on.
    """
