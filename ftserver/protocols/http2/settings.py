"""The HTTP/2 settings a server announces and the abuse limits it enforces."""

from __future__ import annotations

from dataclasses import dataclass

#: The preface a client starts every HTTP/2 connection with (RFC 9113 §3.4).
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

#: Seconds over which the flood counters below are counted.
ABUSE_WINDOW = 10.0


@dataclass(frozen=True, slots=True)
class H2Settings:
    """What each HTTP/2 connection announces (RFC 9113 §6.5.2) and enforces.

    - ``max_concurrent_streams``: streams a client may have open at once;
    - ``initial_window_size``: the receive window of each stream *and* of the connection:
      a stream's window is given back as its application reads the body, the
      connection's as bytes arrive, so one stream whose app does not read stalls only
      itself. Buffered request bodies are bounded by ``max_concurrent_streams`` times
      this, per connection;
    - ``max_frame_size``: the largest frame payload accepted;
    - ``max_header_list_size``: the largest header block, decoded (HPACK's measure) and
      encoded (checked before decoding, across CONTINUATION frames);
    - the flood limits, each per ``ABUSE_WINDOW`` seconds: past one, the connection ends
      with GOAWAY ``ENHANCE_YOUR_CALM`` (``max_resets``: RST_STREAM received or sent
      because of a malformed request, CVE-2023-44487; ``max_pings``, ``max_settings``;
      ``max_empty_frames``: DATA frames with neither bytes nor END_STREAM, PRIORITY
      frames and unknown frames).
    """

    max_concurrent_streams: int = 100
    initial_window_size: int = 65535
    max_frame_size: int = 16384
    max_header_list_size: int = 65536
    max_resets: int = 200
    max_pings: int = 100
    max_settings: int = 100
    max_empty_frames: int = 1000
