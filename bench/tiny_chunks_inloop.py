"""Issue 13, item 4, measured inside the server: the longest time the worker's loop spends
in one driver callback (``data_received``, or a later pass over the same read) while a
body of 200,000 chunks arrives — what a concurrent request on that thread waits at most,
before anything the OS scheduler adds. In-process (``ftserver.testing.serve``, one thread).

    python bench/tiny_chunks_inloop.py fast|h11 CHUNK_SIZE
"""

import socket
import sys
import time

from ftserver.testing import serve
from ftserver.threads import http1 as driver
from bench.apps import echo

longest = [0.0]
def timed(fn):
    def wrapper(*args):
        start = time.perf_counter()
        try:
            return fn(*args)
        finally:
            longest[0] = max(longest[0], time.perf_counter() - start)
    return wrapper
D = driver.HTTP1Driver
D.data_received = timed(D.data_received)
if hasattr(D, "_next_pass"):
    D._next_pass = timed(D._next_pass)

mode, size = sys.argv[1], int(sys.argv[2])
chunk = b"%x\r\n" % size + b"x" * size + b"\r\n"
body = chunk * 200_000 + b"0\r\n\r\n"
with serve(echo, http1=mode, lifespan="off") as server:
    for rep in range(3):
        longest[0] = 0.0
        s = socket.create_connection(("127.0.0.1", server.port), timeout=60)
        t0 = time.perf_counter()
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
        head = s.recv(100)
        print(f"{mode:4} {size} B chunks: {head.split(b' ')[1].decode()} after {time.perf_counter() - t0:.2f} s; longest callback {longest[0] * 1000:.1f} ms")
        s.close()
