"""Pure media processing: probing uploads and transcoding them to HLS (no HTTP, no DB)."""
