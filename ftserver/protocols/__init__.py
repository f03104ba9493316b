"""Synchronous sans-I/O protocol code: bytes in -> events out, events in -> bytes out.

Nothing in this package touches a socket, a thread or an event loop. The drivers in
``ftserver.threads`` own the I/O and feed these objects.
"""
