"""Scenario: GStreamer's webrtcbin (RSA DTLS certificate) publishes by WHIP; ffprobe plays it.

Runs inside a loopback-only network namespace (``test_gstreamer.py`` starts it) with the
server (SQLite, in-process broker) as a child process. The publisher is
``tests/live/gst_publisher.py`` run by the system python3 (Debian's GStreamer bindings);
``ffprobe`` (Debian's ffmpeg) reads the live HLS as any player would. Prints one
``RESULT_MARK`` + JSON line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.live.scenarios.publish import SERVER_SETTINGS, _auth, _new_stream, _playlist, _until
from tests.web.harness import RESULT_MARK, ServerProcess

PUBLISHER = Path(__file__).resolve().parents[1] / "gst_publisher.py"
SYSTEM_PYTHON = "/usr/bin/python3"
PUBLISH_SECONDS = 60  # an upper bound: the scenario stops it as soon as it has looked


def _key_type(pem: str | None) -> str | None:
    """'rsa-2048', 'ec-secp256r1', ... of a PEM certificate."""
    if not pem:
        return None
    key = x509.load_pem_x509_certificate(pem.encode()).public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return f"rsa-{key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"ec-{key.curve.name}"
    return type(key).__name__


async def _read_events(stdout: asyncio.StreamReader, events: list[dict[str, Any]]) -> None:
    async for line in stdout:
        with contextlib.suppress(ValueError):
            events.append(json.loads(line))


async def _ffprobe(url: str) -> dict[str, Any]:
    """What ffprobe finds decoding the first seconds of the live playlist."""
    process = await asyncio.create_subprocess_exec(
        "ffprobe", "-v", "error", "-rw_timeout", "10000000",
        "-read_intervals", "%+3", "-count_frames",
        "-show_entries", "stream=codec_type,codec_name,width,height,nb_read_frames",
        "-of", "json", url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    streams = json.loads(stdout or b"{}").get("streams", [])
    return {"returncode": process.returncode, "streams": streams, "stderr": stderr.decode()[-2000:]}


async def scenario(url: str, workdir: Path) -> dict[str, Any]:
    result: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=url, timeout=20) as http:
        alice = (await http.post("/users", json={"username": "alice"})).json()
        token = alice["access_token"]
        room = (await http.post("/rooms", json={"name": "Live room"}, headers=_auth(token))).json()
        stream = await _new_stream(http, room["id"], token, "From GStreamer")
        whip_url = urljoin(url, stream["whip_url"])
        publisher_log = workdir / "publisher.log"
        with publisher_log.open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                SYSTEM_PYTHON, str(PUBLISHER), whip_url, stream["stream_key"],
                str(PUBLISH_SECONDS),
                stdout=asyncio.subprocess.PIPE, stderr=log,
                env={**os.environ, "GST_DEBUG": "2"},  # warnings and errors: the DTLS ones
            )  # fmt: skip
        assert process.stdout is not None
        events: list[dict[str, Any]] = []
        reader = asyncio.create_task(_read_events(process.stdout, events))
        result["events"] = events
        try:

            async def settled() -> str | None:
                states = [e["state"] for e in events if e["event"] == "connection"]
                if "connected" in states:
                    return "connected"
                if "failed" in states or any(e["event"] in ("error", "done") for e in events):
                    return "failed"
                return None

            try:
                result["publisher_state"] = await _until("the publisher to connect", settled, 30)
            except AssertionError:
                result["publisher_state"] = "timeout"  # the test shows the events and logs
            connected = next(
                (e for e in events if e.get("state") == "connected"), {"certificate": None}
            )
            result["publisher_certificate"] = _key_type(connected["certificate"])
            result["server_certificate"] = _key_type(connected.get("remote_certificate"))
            if result["publisher_state"] == "connected":
                pull = urljoin(url, stream["pull_url"])
                started = time.monotonic()
                await _until("the first segment", lambda: _playlist(http, pull), timeout=30)
                result["seconds_to_first_segment"] = round(time.monotonic() - started, 2)
                result["stream_live"] = (
                    await http.get(f"/live-streams/{stream['id']}", headers=_auth(token))
                ).json()["status"]
                result["ffprobe"] = await _ffprobe(pull)

                async def stats() -> bool:
                    return any(e["event"] == "stats" for e in events)

                # Its getStats() answer, before it is stopped (a busy machine can hold
                # the answer back past the lines above).
                await _until("the publisher's stats", stats, timeout=30)
        finally:
            if process.returncode is None:
                process.terminate()  # the publisher DELETEs its WHIP session, then exits
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()
            await reader
            result["publisher_log"] = publisher_log.read_text(errors="replace")[-3000:]
        result["after"] = (
            await http.get(f"/live-streams/{stream['id']}", headers=_auth(token))
        ).json()
    return result


def main() -> None:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="videochat-gst-") as tmp:
        workdir = Path(tmp)
        log = workdir / "server.log"
        try:
            server = ServerProcess(workdir, SERVER_SETTINGS)
            try:
                server.start()
                result = {"ok": True, **asyncio.run(scenario(server.url, workdir))}
            finally:
                server.stop()
        except Exception as error:
            result = {
                "ok": False,
                "error": f"{type(error).__name__}: {error}",
                "traceback": traceback.format_exc()[-4000:],
            }
        result["server_log"] = log.read_text()[-4000:] if log.exists() else ""
    result["seconds"] = round(time.monotonic() - started, 2)
    print(RESULT_MARK + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
