"""Calls on an SFU: Janus instances, their VideoRooms, and the grants that admit people."""
