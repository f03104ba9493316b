import logging
import socket
import threading
import time

import pytest

from tests.ftserve_process import ftserve  # noqa: F401 - the fixture: ftserve as a subprocess
from tests.tls_certs import certs  # noqa: F401 - the fixture: test certificates, made with openssl


class ServerLog(logging.Handler):
    """What the server logs on ``ftserver.error`` (tracebacks included), as text."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        self._lines: list[str] = []
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        line = self.format(record)
        with self._lock:
            self._lines.append(line)

    @property
    def text(self) -> str:
        with self._lock:
            return "\n".join(self._lines)


@pytest.fixture
def server_log():
    """The server's log, seen whatever stream its handler writes to (capfd misses it when
    the handler was made during another test, on that test's captured sys.stderr)."""
    logger = logging.getLogger("ftserver.error")
    handler = ServerLog()
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


class RawClient:
    """A plain socket client for what httpx will not send: pipelining, malformed requests."""

    def __init__(self, url_or_port, timeout: float = 5.0) -> None:
        port = url_or_port if isinstance(url_or_port, int) else int(str(url_or_port).rsplit(":", 1)[1])
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_until_closed(self, limit: float = 5.0) -> bytes:
        deadline = time.monotonic() + limit
        chunks = [self.buf]
        self.buf = b""
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks)

    def read_response(self, head: bool = False) -> tuple[int, dict[str, str], bytes]:
        """Read one response (Content-Length or chunked framing; none after a HEAD)."""
        lines = self._read_until(b"\r\n\r\n").decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if head or status < 200 or status in (204, 304):
            return status, headers, b""
        if "content-length" in headers:
            body = self._read_exact(int(headers["content-length"]))
        elif headers.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                size = int(self._read_until(b"\r\n").split(b";")[0], 16)
                if size == 0:
                    self._read_until(b"\r\n")
                    break
                body += self._read_exact(size)
                self._read_exact(2)
        else:
            body = self.read_until_closed()
        return status, headers, body

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError(f"closed by server; buffered: {self.buf!r}")
        self.buf += data

    def _read_until(self, marker: bytes) -> bytes:
        while marker not in self.buf:
            self._fill()
        head, _, self.buf = self.buf.partition(marker)
        return head

    def _read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def raw_client():
    clients = []

    def make(url_or_port, timeout: float = 5.0) -> RawClient:
        client = RawClient(url_or_port, timeout)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
