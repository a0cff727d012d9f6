"""WebSocket close codes the server uses (documented in docs/PROTOCOL.md)."""

NORMAL = 1000
GOING_AWAY = 1001  # the server is shutting down
POLICY_VIOLATION = 1008  # refused at the handshake (sent as HTTP 403) or abuse
FRAME_TOO_BIG = 1009
INTERNAL_ERROR = 1011
TRY_AGAIN_LATER = 1013  # the database went away while the socket was opening; reconnect
TOKEN_EXPIRED = 4001  # the access token that opened the socket expired; reconnect with a fresh one
SLOW_CONSUMER = 4008  # the client did not read fast enough; reconnect with ?since=
RATE_LIMITED = 4029  # kept sending after rate-limit errors
