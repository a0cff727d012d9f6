"""The realtime gateway: sockets, the hub that fans frames out, and the broker."""
