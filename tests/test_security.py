"""HTTP rate limits and security headers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets

from tests.support import run_server


async def test_rate_limit_headers_and_429(make_settings: Any) -> None:
    settings = make_settings(rate_limit={"enabled": True, "requests": 5, "window_seconds": 60})
    async with run_server(settings) as live, httpx.AsyncClient(base_url=live.url) as http:
        remaining = []
        for _ in range(5):
            response = await http.get("/rooms")
            assert response.status_code == 200
            assert response.headers["x-ratelimit-limit"] == "5"
            remaining.append(int(response.headers["x-ratelimit-remaining"]))
        assert remaining == [4, 3, 2, 1, 0]
        refused = await http.get("/rooms")
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert "Too many requests" in refused.json()["detail"]
        # Health checks are never limited.
        assert (await http.get("/health")).status_code == 200


async def test_security_headers(client: httpx.AsyncClient) -> None:
    page = await client.get("/chat")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["x-frame-options"] == "DENY"
    # The API docs have their own policy (inline start-up script), same origin only.
    docs = await client.get("/docs")
    assert "script-src 'self' 'unsafe-inline'" in docs.headers["content-security-policy"]


async def test_cors_allow_list(make_settings: Any) -> None:
    settings = make_settings(cors_origins=["https://app.example"])
    async with run_server(settings) as live, httpx.AsyncClient(base_url=live.url) as http:
        allowed = await http.options(
            "/rooms",
            headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
        )
        assert allowed.headers["access-control-allow-origin"] == "https://app.example"
        denied = await http.get("/rooms", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in denied.headers


async def test_cors_answers_are_readable_by_a_browser_tus_client_even_when_refused(
    make_settings: Any,
) -> None:
    """tus-js-client on another origin reads Upload-Offset & co.; a 429 carries CORS too
    (a refusal the page cannot read is a bare network error to it)."""
    front = "https://app.example"
    settings = make_settings(
        cors_origins=[front], rate_limit={"enabled": True, "requests": 3, "window_seconds": 60}
    )
    async with run_server(settings) as live, httpx.AsyncClient(base_url=live.url) as http:
        tus = await http.options("/uploads/tus", headers={"Origin": front})
        exposed = {
            h.strip().lower() for h in tus.headers["access-control-expose-headers"].split(",")
        }
        assert {"location", "upload-offset", "upload-length", "tus-resumable"} <= exposed
        assert {"upload-defer-length", "retry-after", "x-video-id"} <= exposed
        for _ in range(3):
            await http.get("/rooms", headers={"Origin": front})
        refused = await http.get("/rooms", headers={"Origin": front})
        assert refused.status_code == 429
        assert refused.headers["access-control-allow-origin"] == front
        # Preflights are not counted: the browser sends them, not the page.
        preflight = await http.options(
            "/rooms", headers={"Origin": front, "Access-Control-Request-Method": "POST"}
        )
        assert preflight.status_code == 200


async def test_login_attempts_are_limited_per_account(make_settings: Any) -> None:
    settings = make_settings(rate_limit={"enabled": True, "requests": 1000})
    async with run_server(settings) as live, httpx.AsyncClient(base_url=live.url) as http:
        await http.post("/auth/register", json={"username": "target", "password": "right-password"})
        codes = [
            (
                await http.post("/auth/login", json={"username": "target", "password": "wrong!!!"})
            ).status_code
            for _ in range(11)
        ]
        assert codes[:10] == [401] * 10
        assert codes[10] == 429
        blocked = await http.post(
            "/auth/login", json={"username": "target", "password": "right-password"}
        )
        assert blocked.status_code == 429  # even the right password waits out the window
        assert int(blocked.headers["retry-after"]) >= 1
        other = await http.post("/auth/login", json={"username": "other", "password": "x"})
        assert other.status_code == 401  # other accounts are not locked by it


@contextlib.asynccontextmanager
async def _two_held_and_a_third_refused(live: Any, path: str) -> AsyncIterator[None]:
    """Two sockets on ``path`` open and a third refused (403) while the body runs; then,
    with those two closed, a slot is free again."""
    from tests.support import connect_ws

    async with connect_ws(live, path), connect_ws(live, path):
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with connect_ws(live, path):
                pass
        assert refused.value.response.status_code == 403
        yield
    async with connect_ws(live, path):
        pass


async def test_open_sockets_per_address_are_limited(make_settings: Any) -> None:
    from tests.support import create_guest, create_room, ws_path

    settings = make_settings(
        rate_limit={"enabled": True, "requests": 1000, "ws_connections_per_ip": 2}
    )
    async with run_server(settings) as live, httpx.AsyncClient(base_url=live.url) as http:
        alice = await create_guest(http, "alice")
        room = await create_room(http, alice["access_token"])
        path = ws_path(room["id"], alice["id"], alice["access_token"])
        async with _two_held_and_a_third_refused(live, path):
            pass


async def test_an_office_behind_one_address_all_gets_in_with_the_default_limits(
    make_settings: Any,
) -> None:
    """Colleagues share their office's address (its NAT): the defaults let a meeting
    of twelve hold their sockets (10 per address refused the 11th and 12th)."""
    from tests.support import connect_ws, room_with_people, ws_path

    settings = make_settings(rate_limit={"enabled": True})  # every other limit its default
    async with run_server(settings) as live, httpx.AsyncClient(base_url=live.url) as http:
        names = [f"colleague{index}" for index in range(12)]
        room, people = await room_with_people(http, *names)
        async with contextlib.AsyncExitStack() as sockets:
            for person in people:
                path = ws_path(room["id"], person["id"], person["access_token"])
                await sockets.enter_async_context(connect_ws(live, path))
            assert live.context.hub.open_from("127.0.0.1") == len(people)


async def test_open_sockets_per_account_are_limited(make_settings: Any) -> None:
    """One person's sockets (tabs, devices) are capped on their own: a third is refused
    while a colleague at the same address still gets in."""
    from tests.support import connect_ws, room_with_people, ws_path

    settings = make_settings(
        rate_limit={"enabled": True, "requests": 1000, "ws_connections_per_user": 2}
    )
    async with run_server(settings) as live, httpx.AsyncClient(base_url=live.url) as http:
        room, (alice, bob) = await room_with_people(http, "alice", "bob")
        path = ws_path(room["id"], alice["id"], alice["access_token"])
        bobs = ws_path(room["id"], bob["id"], bob["access_token"])
        async with _two_held_and_a_third_refused(live, path), connect_ws(live, bobs):
            pass  # bob, at the same address, got in while alice's third was refused


async def test_the_web_clients_page_is_not_counted(make_settings: Any) -> None:
    """Its page is one static file at every /chat address, like the client's scripts:
    counted, the 9th colleague behind an office's address got a 429 for the page itself."""
    settings = make_settings(rate_limit={"enabled": True, "requests": 2, "window_seconds": 60})
    async with run_server(settings) as live, httpx.AsyncClient(base_url=live.url) as http:
        for path in ["/chat", "/chat/rooms/some-room"] * 5:
            page = await http.get(path)
            assert page.status_code == 200
            assert "x-ratelimit-limit" not in page.headers
        assert [(await http.get("/rooms")).status_code for _ in range(3)] == [200, 200, 429]


async def test_only_the_web_clients_own_addresses_are_exempt(make_settings: Any) -> None:
    """/chat and what is under it, not every path that starts with those letters: those
    are counted like any other (a bare "/chat" prefix let "/chatter" through uncounted)."""
    settings = make_settings(rate_limit={"enabled": True, "requests": 2, "window_seconds": 60})
    async with run_server(settings) as live, httpx.AsyncClient(base_url=live.url) as http:
        codes = [(await http.get("/chatter")).status_code for _ in range(3)]
        assert codes == [404, 404, 429]
        assert (await http.get("/chat")).status_code == 200


async def test_signed_in_people_at_one_address_each_have_their_own_request_count(
    make_settings: Any,
) -> None:
    """An office behind one NAT: each colleague's signed-in requests are theirs to count
    (~10 to open a room), not the address's; without a token the address counts."""
    from tests.support import auth, create_guest

    settings = make_settings(rate_limit={"enabled": True, "requests": 5, "window_seconds": 60})
    async with run_server(settings) as live, httpx.AsyncClient(base_url=live.url) as http:
        people = [await create_guest(http, f"c{i}") for i in range(3)]
        for person in people:
            headers = auth(person["access_token"])
            codes = [(await http.get("/rooms", headers=headers)).status_code for _ in range(6)]
            assert codes == [200] * 5 + [429]
        # The 3 anonymous sign-ups used 3 of the address's 5; 2 left, then refused.
        anonymous = [(await http.get("/rooms")).status_code for _ in range(3)]
        assert anonymous == [200, 200, 429]


async def test_one_address_with_many_accounts_meets_the_address_backstop(
    make_settings: Any,
) -> None:
    from tests.support import auth, create_guest

    settings = make_settings(
        rate_limit={"enabled": True, "requests": 100, "requests_per_ip": 6, "window_seconds": 60}
    )
    async with run_server(settings) as live, httpx.AsyncClient(base_url=live.url) as http:
        accounts = [await create_guest(http, f"t{i}") for i in range(4)]
        codes = []
        for account in accounts:
            headers = auth(account["access_token"])
            codes += [(await http.get("/rooms", headers=headers)).status_code for _ in range(2)]
        assert codes == [200] * 6 + [429] * 2
        refused = await http.get("/rooms", headers=auth(accounts[0]["access_token"]))
        assert refused.status_code == 429
        assert "per address" in refused.json()["detail"]
        assert int(refused.headers["retry-after"]) >= 1


async def test_hls_reads_are_not_rate_limited_but_the_api_is(make_settings: Any) -> None:
    """Viewers poll live playlists every segment: those GETs must not use up the limit."""
    from videochat.live.service import PLAYLIST, RENDITION
    from videochat.media.storage import MediaStorage

    settings = make_settings(rate_limit={"enabled": True, "requests": 10, "window_seconds": 60})
    async with run_server(settings) as live, httpx.AsyncClient(base_url=live.url) as http:
        user = (await http.post("/users", json={"username": "hls"})).json()
        headers = {"Authorization": f"Bearer {user['access_token']}"}
        room = (await http.post("/rooms", json={"name": "HLS"}, headers=headers)).json()
        created = await http.post(
            f"/rooms/{room['id']}/live-stream", json={"title": "t"}, headers=headers
        )
        stream = created.json()
        # A live stream's files as the recorder leaves them (no publisher needed here).
        folder = MediaStorage(settings.data_dir).output_dir(stream["id"]) / RENDITION
        folder.mkdir(parents=True)
        (folder / "segment_00000.ts").write_bytes(b"\x47" * 188)
        (folder / PLAYLIST).write_text(
            "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n"
            "#EXTINF:2.000000,\nsegment_00000.ts\n"
        )
        base = stream["pull_url"].rsplit("/", 1)[0]
        # Far past the limit of 10: a viewer's playlist polls and segment fetches.
        for _ in range(60):
            playlist = await http.get(stream["pull_url"])
            assert playlist.status_code == 200
            assert "x-ratelimit-limit" not in playlist.headers
            assert (await http.get(f"{base}/segment_00000.ts")).status_code == 200
            # (HEAD is not routed here: 405, but not counted either.)
            assert (await http.head(f"{base}/segment_00000.ts")).status_code == 405
        # The library's HLS path is exempt too (an unknown video: 404, never 429).
        for _ in range(20):
            missing = await http.get("/media/videos/nope/master.m3u8")
            assert missing.status_code == 404
        # The API still counts: the user's 2 signed-in requests above plus these reach
        # their limit of 10 (the guest's creation, without a token, counted on the address).
        codes = [(await http.get("/rooms", headers=headers)).status_code for _ in range(10)]
        assert codes[:8] == [200] * 8
        assert codes[8:] == [429] * 2
        # A write to a media path is not a read: it is counted (and refused) as usual.
        assert (await http.post(stream["pull_url"], headers=headers)).status_code == 429


async def test_hls_reads_count_when_the_exemption_is_off(make_settings: Any) -> None:
    settings = make_settings(
        rate_limit={"enabled": True, "requests": 3, "window_seconds": 60, "exempt_media": False}
    )
    async with run_server(settings) as live, httpx.AsyncClient(base_url=live.url) as http:
        codes = [(await http.get("/live/x/index.m3u8")).status_code for _ in range(4)]
        assert codes == [404, 404, 404, 429]


async def test_an_attacker_cannot_lock_the_owner_out(make_settings: Any) -> None:
    """Wrong passwords from rotating addresses: the owner, from a known address, gets in."""
    limits = {"enabled": True, "requests": 10_000, "login_attempts_per_account": 12}
    settings = make_settings(rate_limit=limits)
    right = {"username": "owner", "password": "right-password"}
    wrong = {"username": "OWNER", "password": "wrong-password"}
    home = {"X-Forwarded-For": "192.0.2.10"}  # the test client is a trusted proxy
    async with run_server(settings) as live, httpx.AsyncClient(base_url=live.url) as http:
        assert (await http.post("/auth/register", json=right, headers=home)).status_code == 201
        codes = []
        for address in range(10):  # 30 wrong passwords from 10 rotating addresses
            attacker = {"X-Forwarded-For": f"198.51.100.{address}"}
            for _ in range(3):
                response = await http.post("/auth/login", json=wrong, headers=attacker)
                codes.append(response.status_code)
        # Past the account's limit for unknown addresses, guessing waits.
        assert codes == [401] * 12 + [429] * 18
        refused = await http.post(
            "/auth/login", json=right, headers={"X-Forwarded-For": "198.51.100.99"}
        )
        assert refused.status_code == 429  # unknown addresses wait, even with the password
        owner = await http.post("/auth/login", json=right, headers=home)
        assert owner.status_code == 200, owner.text
        # One address hammering one account is locked for that account only.
        for _ in range(10):
            await http.post("/auth/login", json=wrong, headers={"X-Forwarded-For": "203.0.113.1"})
        locked = await http.post(
            "/auth/login", json=right, headers={"X-Forwarded-For": "203.0.113.1"}
        )
        assert locked.status_code == 429
        assert (await http.post("/auth/login", json=right, headers=home)).status_code == 200


async def test_a_successful_login_clears_the_address_failures(make_settings: Any) -> None:
    settings = make_settings(rate_limit={"enabled": True, "requests": 10_000})
    right = {"username": "typo", "password": "right-password"}
    async with run_server(settings) as live, httpx.AsyncClient(base_url=live.url) as http:
        await http.post("/auth/register", json=right)
        for _round in range(2):  # 18 typos in all, never 10 in a row
            for _ in range(9):
                wrong = {"username": "typo", "password": "typo-password"}
                assert (await http.post("/auth/login", json=wrong)).status_code == 401
            assert (await http.post("/auth/login", json=right)).status_code == 200


async def _dribble(url: str, payload: bytes, *, pause: float) -> bytes:
    """Send ``payload`` a byte at a time; what the server answered once it closed (or b"")."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        for byte in payload:
            if reader.at_eof():
                break
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(pause)
        async with asyncio.timeout(5):
            return await reader.read()  # returns at EOF: the server hung up
    except ConnectionError:
        return b"closed"
    finally:
        writer.close()


async def test_slow_request_headers_are_cut_off(make_settings: Any) -> None:
    """Slowloris: headers sent byte by byte never finish; the server hangs up."""
    settings = make_settings(http={"header_timeout_seconds": 1})
    slow = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * 40
    async with run_server(settings) as live:
        # 60 bytes at 0.1 s: still sending long after the 1 s allowed.
        answer = await _dribble(live.url, slow, pause=0.1)
        assert answer == b"closed" or answer.startswith(b"HTTP/1.1 408"), answer
        # Connecting and sending nothing is cut off the same way.
        host, port = live.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        async with asyncio.timeout(10):
            assert await reader.read() == b""
        writer.close()
        # A request whose headers arrive in time, on a kept-alive connection, is served.
        async with httpx.AsyncClient(base_url=live.url) as http:
            for _ in range(2):
                assert (await http.get("/health/live")).status_code == 200
                await asyncio.sleep(1.2)
