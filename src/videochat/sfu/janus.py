"""Clients of Janus's HTTP APIs (Janus 1.1): the admin API and the Janus API.

videochat manages VideoRooms through the admin API only: its ``message_plugin`` request
runs the VideoRoom's synchronous requests (create, destroy, allowed, kick, moderate,
listparticipants) without a Janus session, so no videochat instance keeps a session
alive, and any instance can act on any room. Tokens (``add_token``/``remove_token``)
are admin requests too. ``JanusSession`` speaks the Janus API as a browser does
(session, handle, messages, long-poll events, keepalive): the tests join rooms with it.

Every request has a short timeout; a request that could not reach Janus (connection
refused, timed out) is tried again a bounded number of times; an answer that is an
error is never retried.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from typing import Any

import httpx

VIDEOROOM = "janus.plugin.videoroom"
# Janus's HTTP transport answers 200 even for errors: the JSON says what happened.
UNAUTHORIZED = 403
NO_SUCH_ROOM = 426
NO_SUCH_FEED = 428
ROOM_EXISTS = 427
# Janus core: the session or handle an admin request names does not exist (any more).
NO_SUCH_SESSION = 458
NO_SUCH_HANDLE = 459


class JanusError(Exception):
    """Janus answered with an error (``code`` is Janus's or the VideoRoom's)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"janus error {code}: {reason}")
        self.code = code
        self.reason = reason


class JanusUnavailable(JanusError):
    """Janus could not be reached (after the retries)."""

    def __init__(self, url: str, cause: Exception) -> None:
        super().__init__(0, f"{url} unreachable: {type(cause).__name__}: {cause}")


def transaction_id() -> str:
    return secrets.token_hex(8)


async def post_json(
    http: httpx.AsyncClient, url: str, body: dict[str, Any], *, retries: int
) -> dict[str, Any]:
    """POST ``body`` (with a fresh transaction) and return Janus's JSON answer."""
    body = {"transaction": transaction_id(), **body}
    for attempt in range(retries + 1):
        try:
            response = await http.post(url, json=body)
            answer: dict[str, Any] = response.json()
            return answer
        except (httpx.TransportError, ValueError) as exc:
            if attempt == retries:
                raise JanusUnavailable(url, exc) from exc
            await asyncio.sleep(0.1 * 2**attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def check(answer: dict[str, Any]) -> dict[str, Any]:
    """The answer, or ``JanusError`` when Janus refused the request."""
    if answer.get("janus") == "error":
        error = answer.get("error") or {}
        raise JanusError(int(error.get("code", 0)), str(error.get("reason", "unknown error")))
    return answer


@dataclass(slots=True)
class JanusAdmin:
    """One Janus instance's admin API."""

    http: httpx.AsyncClient
    url: str
    secret: str
    retries: int = 2

    async def request(self, janus: str, **fields: Any) -> dict[str, Any]:
        body = {"janus": janus, "admin_secret": self.secret, **fields}
        return check(await post_json(self.http, self.url, body, retries=self.retries))

    async def videoroom(self, request: dict[str, Any]) -> dict[str, Any]:
        """A VideoRoom synchronous request; its answer, or ``JanusError`` with its code."""
        answer = await self.request("message_plugin", plugin=VIDEOROOM, request=request)
        response: dict[str, Any] = answer.get("response") or {}
        if "error_code" in response:
            raise JanusError(int(response["error_code"]), str(response.get("error", "")))
        return response

    async def add_token(self, token: str) -> None:
        """Admit ``token`` to the Janus API, for the VideoRoom plugin only."""
        await self.request("add_token", token=token, plugins=[VIDEOROOM])

    async def remove_token(self, token: str) -> None:
        """Withdraw a token: every later request with it (keepalives too) is refused."""
        try:
            await self.request("remove_token", token=token)
        except JanusError as exc:
            if isinstance(exc, JanusUnavailable) or "not found" not in exc.reason.lower():
                raise

    async def handle_info(self, session_id: int, handle_id: int) -> dict[str, Any] | None:
        """What Janus knows of a handle: the token it was attached with (``token``) and
        the plugin's view (``plugin_specific``); None when it does not exist."""
        try:
            answer = await self.request("handle_info", session_id=session_id, handle_id=handle_id)
        except JanusError as exc:
            if exc.code in (NO_SUCH_SESSION, NO_SUCH_HANDLE):
                return None
            raise
        info: dict[str, Any] = answer.get("info") or {}
        return info

    async def tokens(self) -> list[str]:
        answer = await self.request("list_tokens")
        listed = (answer.get("data") or {}).get("tokens") or []
        return [str(item.get("token")) for item in listed if item.get("token")]


class JanusSession:
    """A Janus API session, as a browser (or a server-side participant) holds one."""

    def __init__(
        self, http: httpx.AsyncClient, url: str, *, token: str | None = None, retries: int = 0
    ) -> None:
        self.http = http
        self.url = url.rstrip("/")
        self.token = token
        self.retries = retries
        self.id: int | None = None

    def _body(self, janus: str, **fields: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"janus": janus, **fields}
        if self.token is not None:
            body["token"] = self.token
        return body

    async def _post(self, path: str, janus: str, **fields: Any) -> dict[str, Any]:
        url = f"{self.url}{path}"
        return check(
            await post_json(self.http, url, self._body(janus, **fields), retries=self.retries)
        )

    async def create(self) -> int:
        answer = await self._post("", "create")
        self.id = int(answer["data"]["id"])
        return self.id

    async def attach(self, plugin: str = VIDEOROOM) -> int:
        answer = await self._post(f"/{self.id}", "attach", plugin=plugin)
        return int(answer["data"]["id"])

    async def message(
        self, handle: int, body: dict[str, Any], jsep: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Send a plugin message; an asynchronous request answers ``ack``, then an event."""
        fields: dict[str, Any] = {"body": body}
        if jsep is not None:
            fields["jsep"] = jsep
        return await self._post(f"/{self.id}/{handle}", "message", **fields)

    async def keepalive(self) -> None:
        await self._post(f"/{self.id}", "keepalive")

    async def events(self, *, max_events: int = 10) -> list[dict[str, Any]]:
        """One long poll: the session's pending events (an empty list after Janus's 30 s)."""
        params: dict[str, Any] = {"maxev": max_events}
        if self.token is not None:
            params["token"] = self.token
        # Janus holds a long poll up to 30 s before it answers a keepalive.
        response = await self.http.get(f"{self.url}/{self.id}", params=params, timeout=40.0)
        answer = response.json()
        if isinstance(answer, dict):
            if answer.get("janus") == "keepalive":
                return []
            return [check(answer)]
        return list(answer)

    async def destroy(self) -> None:
        if self.id is not None:
            await self._post(f"/{self.id}", "destroy")
            self.id = None
