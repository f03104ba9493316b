"""HPACK with a per-connection memory of repeated header blocks.

A client that sends the same request again (a poller, an API client, a load tool) sends the
same header block bytes once its fields are in the dynamic table; a server answering the same
way encodes the same fields. Both decode and encode then leave the table as it was, so the
result of the last time is the right one as long as the table has not changed since:
``CachingDecoder`` and ``CachingEncoder`` keep a few such results, and forget them all
whenever their table changes (an insertion, an eviction, a size update).
"""

from __future__ import annotations

from typing import Any, Final

from hpack import Decoder, Encoder
from hpack.table import HeaderTable

__all__ = ["MAX_BLOCK_BYTES", "MAX_BLOCKS", "CachingDecoder", "CachingEncoder", "CountingTable"]

#: Blocks remembered per direction and connection, and the largest block remembered.
MAX_BLOCKS: Final = 16
MAX_BLOCK_BYTES: Final = 1024


class CountingTable(HeaderTable):
    """A dynamic table that counts its changes (``changes``)."""

    def __init__(self) -> None:
        super().__init__()
        self.changes = 0

    def add(self, name: bytes, value: bytes) -> None:
        self.changes += 1
        super().add(name, value)

    @property
    def maxsize(self) -> int:
        return self._maxsize

    @maxsize.setter
    def maxsize(self, newmax: int) -> None:
        self.changes += 1
        HeaderTable.maxsize.fset(self, newmax)  # type: ignore[attr-defined]


class CachingDecoder(Decoder):
    """``hpack.Decoder`` answering a block seen before, under the same table, from memory."""

    def __init__(self, max_header_list_size: int) -> None:
        super().__init__(max_header_list_size)
        self.header_table = CountingTable()
        self.blocks: dict[bytes, list[Any]] = {}

    def decode(self, data: bytes, raw: bool = False) -> list[Any]:  # type: ignore[override]
        cacheable = raw and type(data) is bytes and len(data) <= MAX_BLOCK_BYTES
        if cacheable:
            headers = self.blocks.get(data)
            if headers is not None:
                return list(headers)
        table = self.header_table
        changes = table.changes
        headers = super().decode(data, raw)  # type: ignore[assignment]
        if table.changes != changes:
            self.blocks.clear()
        elif cacheable and len(self.blocks) < MAX_BLOCKS:
            self.blocks[data] = list(headers)
        return headers  # type: ignore[return-value]


class CachingEncoder(Encoder):
    """``hpack.Encoder`` giving the block it made before for the same fields under the same
    table. Only lists of plain 2- or 3-tuples are remembered (what ``HTTP2Connection`` sends).
    ``blocks`` may hold other keys standing for fields (``HTTP2Connection.send_response``'s
    response, before its fields are made): all are forgotten when the table changes."""

    def __init__(self) -> None:
        super().__init__()
        self.header_table = CountingTable()
        self.blocks: dict[tuple[Any, ...], bytes] = {}

    def encode(self, headers: Any, huffman: bool = True) -> bytes:
        table = self.header_table
        key = None
        if type(headers) is list and not table.resized:
            key = tuple(headers)
            try:
                block = self.blocks.get(key)
            except TypeError:  # (an unhashable value: not remembered)
                key = block = None
            if block is not None:
                return block
        changes = table.changes
        block = super().encode(headers, huffman)
        if table.changes != changes:
            self.blocks.clear()
        elif key is not None and len(self.blocks) < MAX_BLOCKS and all(type(field) is tuple for field in key):
            self.blocks[key] = block
        return block
