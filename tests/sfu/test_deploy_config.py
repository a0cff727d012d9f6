"""deploy/janus is a configuration Janus 1.1 (Debian 12) starts with, and it wants tokens."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.sfu import janus_server
from tests.sfu.janus_server import JANUS, free_tcp_port

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "janus"
pytestmark = pytest.mark.slow


def test_janus_starts_with_the_deploy_config_and_refuses_requests_without_a_token(
    tmp_path: Path,
) -> None:
    janus_server.require()
    api_port, admin_port = free_tcp_port(), free_tcp_port()
    folder = tmp_path / "conf"
    folder.mkdir()
    for path in DEPLOY.glob("*.jcfg"):
        text = path.read_text()
        # Only what differs on this machine: where the folder is, loopback, free ports.
        text = text.replace('"/etc/janus-videochat"', f'"{folder}"')
        text = text.replace('admin_ip = "10.0.0.5"', 'admin_ip = "127.0.0.1"')
        text = text.replace('admin_acl = "10.0.0."', 'admin_acl = "127."')
        text = text.replace("port = 8088", f'port = {api_port}\n    ip = "127.0.0.1"')
        text = text.replace("admin_port = 7088", f"admin_port = {admin_port}")
        (folder / path.name).write_text(text)
    log = tmp_path / "janus.log"
    process = subprocess.Popen(
        [str(JANUS), "-F", str(folder), "-L", str(log), "-N", "-o"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        admin = f"http://127.0.0.1:{admin_port}/admin"
        body = {"janus": "get_status", "transaction": "t", "admin_secret": "change-me-admin-secret"}
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, log.read_text(errors="replace")[-3000:]
            try:
                status = httpx.post(admin, json=body, timeout=0.5).json()
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
                time.sleep(0.1)
        assert status["status"]["token_auth"] is True, status
        api = f"http://127.0.0.1:{api_port}/janus"
        refused = httpx.post(api, json={"janus": "create", "transaction": "x"}, timeout=5).json()
        assert refused["error"]["code"] == 403, refused
        info = httpx.get(f"{api}/info", timeout=5).json()
        assert list(info["plugins"]) == ["janus.plugin.videoroom"], info["plugins"]
        assert list(info["transports"]) == ["janus.transport.http"], info["transports"]
    finally:
        process.terminate()
        process.wait(timeout=10)
