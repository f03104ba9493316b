"""HPACK blocks remembered per connection: a block seen before is answered from memory only
while the dynamic table is as it was (the same bytes can name other fields once it changed)."""

from __future__ import annotations

from hpack import Decoder, Encoder
from hyperframe.frame import HeadersFrame, SettingsFrame

from ftserver.protocols.events import Request
from ftserver.protocols.http2 import HTTP2Connection
from ftserver.protocols.http2.hpack_cache import CachingEncoder
from ftserver.protocols.http2.settings import PREFACE, H2Settings

#: :method GET, :scheme http, :path / (static indexes 2, 6, 4), :authority "localhost"
#: as a literal that is not indexed (no change to the table).
START = b"\x82\x86\x84\x01\x09localhost"
NEWEST = b"\xbe"  # indexed field 62: the newest entry of the dynamic table


def literal_indexed(name: bytes, value: bytes) -> bytes:
    """A literal field with incremental indexing, new name (RFC 7541 §6.2.1)."""
    return b"\x40" + bytes([len(name)]) + name + bytes([len(value)]) + value


def headers_of(conn: HTTP2Connection, stream_id: int, block: bytes) -> list[tuple[bytes, bytes]]:
    frame = HeadersFrame(stream_id, block, flags=["END_HEADERS", "END_STREAM"])
    (request,) = [event for event in conn.receive_data(frame.serialize(), 0.0) if type(event) is Request]
    return [(name, value) for name, value in request.headers if name != b"host"]


def test_same_block_after_a_table_change_is_decoded_again():
    conn = HTTP2Connection(H2Settings())
    conn.initiate()
    conn.receive_data(PREFACE + SettingsFrame(0).serialize(), 0.0)
    assert headers_of(conn, 1, START + literal_indexed(b"x-a", b"1")) == [(b"x-a", b"1")]
    assert headers_of(conn, 3, START + NEWEST) == [(b"x-a", b"1")]
    assert headers_of(conn, 5, START + NEWEST) == [(b"x-a", b"1")]  # (from memory)
    # A new entry: index 62 is now x-b; the very same bytes must say so.
    assert headers_of(conn, 7, START + literal_indexed(b"x-b", b"2")) == [(b"x-b", b"2")]
    assert headers_of(conn, 9, START + NEWEST) == [(b"x-b", b"2")]


def test_encoder_gives_what_a_plain_decoder_reads_through_table_changes():
    encoder = CachingEncoder()
    reference = Encoder()
    decoder = Decoder()
    fields = [(b":status", b"200"), (b"content-type", b"text/plain"), (b"x-n", b"1")]
    other = [(b":status", b"200"), (b"x-other", b"z" * 40)]
    for block_fields in (fields, fields, other, fields, fields, other, other, fields):
        block = encoder.encode(list(block_fields))
        assert block == reference.encode(list(block_fields))
        assert decoder.decode(block, raw=True) == block_fields
    # A smaller table asked for by the peer: the next block starts with the size update.
    encoder.header_table_size = reference.header_table_size = 64
    block = encoder.encode(list(fields))
    assert block == reference.encode(list(fields))
    assert block[0] & 0xE0 == 0x20  # (a dynamic table size update, RFC 7541 §6.3)
