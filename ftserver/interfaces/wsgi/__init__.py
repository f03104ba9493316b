"""WSGI (PEP 3333) on the stream contract: handlers run on a pool of blocking threads.

Each worker thread (one event loop) owns a ``WSGIAdapter`` (``adapter.py``) with
``--blocking-threads`` handler threads. The loop parses requests and hands each
``WSGIExchange`` (``exchange.py``, the loop's half) to the pool through a ``JobQueue``
(``bridge.py``); a handler thread's ``Handler`` (``exchange.py``, the handler's half) builds
the environ (``environ.py``), calls the application and iterates its response. Everything
that touches the connection goes back to the loop through the worker's ``LoopInbox``: one
``call_soon_threadsafe`` wakes the loop for a whole batch of calls, so a small response
costs one wake-up (head, body and end travel together).

What crosses threads, and how:

- request body: the loop appends received chunks to the exchange's ``WSGIInput``
  (``io.py``, a lock-protected deque) and wakes a handler that waits for them; the handler
  reports what it consumed so the driver resumes reading (``body_consumed``) and asks for
  more (``want_body``, which also sends ``100 Continue``). The body is never buffered whole:
  at most the driver's read window (256 KiB) waits in memory.
- response: the handler posts the head and body chunks to the loop. After each
  ``WRITE_WINDOW`` bytes, or when the transport is paused, it waits until the loop has
  written them and the transport has drained (write backpressure).
- the end: the last body chunk and the end of the response go in one post; the iterable's
  ``close()`` runs on the handler thread afterwards (always, also after errors).

A stalled client (no body bytes, or not reading the response) makes the waiting handler
give up after ``--timeout-io`` seconds with a ``TimeoutError`` (an ``OSError``), so handler
threads are never parked for ever.
"""

from ftserver.interfaces.wsgi.adapter import WSGIAdapter
from ftserver.interfaces.wsgi.bridge import JobQueue, LoopInbox
from ftserver.interfaces.wsgi.environ import Environ, HandlerContext, StartResponse, Status, WSGIApp
from ftserver.interfaces.wsgi.exchange import Handler, WSGIExchange
from ftserver.interfaces.wsgi.io import ErrorStream, FileWrapper, WSGIInput

__all__ = [
    "Environ",
    "ErrorStream",
    "FileWrapper",
    "Handler",
    "HandlerContext",
    "JobQueue",
    "LoopInbox",
    "StartResponse",
    "Status",
    "WSGIAdapter",
    "WSGIApp",
    "WSGIExchange",
    "WSGIInput",
]
