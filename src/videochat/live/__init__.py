"""Live streaming: WHIP ingest with aiortc, live HLS with PyAV, archived into the library."""
