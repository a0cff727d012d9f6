"""deploy/janus is a configuration Janus 1.1 (Debian 12) starts with, and it wants tokens.

Also compose's way of using it: render-config.sh fills in the secrets (and refuses
placeholders), and deploy's nginx site puts the Janus API, only it, under /janus/1.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from tests import test_deploy
from tests.processes import free_port
from tests.sfu import janus_server
from tests.sfu.janus_server import JANUS, Janus

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "janus"
pytestmark = pytest.mark.slow


def test_janus_starts_with_the_deploy_config_and_refuses_requests_without_a_token(
    tmp_path: Path,
) -> None:
    janus_server.require()
    api_port, admin_port = free_port(), free_port()
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


RENDER = DEPLOY / "render-config.sh"
ENV_EXAMPLE = DEPLOY.parent / "env.example"


def _example_value(name: str) -> str:
    """The value deploy/env.example gives a variable (a placeholder for the secrets)."""
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.startswith(f"{name}="):
            return line.split("=", 1)[1]
    raise AssertionError(f"{name} is not in env.example")


def _render_env(folder: Path, **overrides: str | None) -> dict[str, str]:
    """What compose gives the janus service, with this machine's loopback for the admin API."""
    values: dict[str, str | None] = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "VIDEOCHAT_SFU__ADMIN_SECRET": "rendered-admin-secret-0123456789",
        "VIDEOCHAT_SFU__ROOM_ADMIN_KEY": "rendered-room-key-0123456789",
        "VIDEOCHAT_PUBLIC_URL": "https://chat.test.invalid/",
        "JANUS_PUBLIC_IP": "198.51.100.7",
        "JANUS_RTP_PORTS": "20000-20099",
        "JANUS_ADMIN_IP": "127.0.0.1",
        "JANUS_ADMIN_ACL": "127.",
        "JANUS_TEMPLATE_DIR": str(DEPLOY),
        "JANUS_CONFIG_DIR": str(folder),
        **overrides,
    }
    return {name: value for name, value in values.items() if value is not None}


def _render(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # POSIX sh as in the image (Debian's dash), never bash.
    shell = "/bin/dash" if Path("/bin/dash").exists() else "/bin/sh"
    return subprocess.run(
        [shell, str(RENDER)], env=env, capture_output=True, text=True, check=False, timeout=30
    )


def _admin(url: str, body: dict[str, object], secret: str) -> dict[str, object]:
    answer: dict[str, object] = httpx.post(
        url, json={**body, "transaction": "t", "admin_secret": secret}, timeout=5
    ).json()
    return answer


def test_the_rendered_config_starts_janus_with_this_deploys_secrets(tmp_path: Path) -> None:
    janus_server.require()
    folder = tmp_path / "conf"
    env = _render_env(folder)
    rendered = _render(env)
    assert rendered.returncode == 0, rendered.stderr
    core = (folder / "janus.jcfg").read_text()
    assert 'nat_1_1_mapping = "198.51.100.7"' in core and "keep_private_host = true" in core
    assert 'rtp_port_range = "20000-20099"' in core
    http = (folder / "janus.transport.http.jcfg").read_text()
    # The origin only: browsers send no path in Origin.
    assert 'allow_origin = "https://chat.test.invalid"' in http
    # As the test above: free ports on loopback instead of compose's fixed ones.
    api_port, admin_port = free_port(), free_port()
    http = http.replace("port = 8088", f'port = {api_port}\n    ip = "127.0.0.1"')
    (folder / "janus.transport.http.jcfg").write_text(
        http.replace("admin_port = 7088", f"admin_port = {admin_port}")
    )
    log = tmp_path / "janus.log"
    process = subprocess.Popen(
        [str(JANUS), "-F", str(folder), "-L", str(log), "-N", "-o"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    secret = env["VIDEOCHAT_SFU__ADMIN_SECRET"]
    admin = f"http://127.0.0.1:{admin_port}/admin"
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, log.read_text(errors="replace")[-3000:]
            try:
                status = _admin(admin, {"janus": "get_status"}, secret)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
                time.sleep(0.1)
        assert status["janus"] == "success", status
        placeholder = _admin(admin, {"janus": "get_status"}, "change-me-admin-secret")
        assert placeholder["janus"] == "error", placeholder
        # The VideoRoom takes the rendered admin_key for a room, not the template's.
        room = {"janus": "message_plugin", "plugin": "janus.plugin.videoroom"}
        keys = (("change-me-room-admin-key", False), (env["VIDEOCHAT_SFU__ROOM_ADMIN_KEY"], True))
        for key, expected in keys:
            request = {"request": "create", "room": 4242, "admin_key": key}
            answer = _admin(admin, {**room, "request": request}, secret)
            response = answer.get("response")
            assert isinstance(response, dict), answer
            assert (response.get("videoroom") == "created") is expected, answer
    finally:
        process.terminate()
        process.wait(timeout=10)
    # Janus took the media settings (they show only in its log).
    started = log.read_text(errors="replace")
    assert "RTP port range: 20000 -- 20099" in started, started[-3000:]
    assert "Using nat_1_1_mapping for public IP: 198.51.100.7" in started
    assert "Going to keep the private host too" in started


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("VIDEOCHAT_SFU__ADMIN_SECRET", None),
        ("VIDEOCHAT_SFU__ADMIN_SECRET", ""),
        ("VIDEOCHAT_SFU__ADMIN_SECRET", "example"),
        ("VIDEOCHAT_SFU__ADMIN_SECRET", "change-me-admin-secret"),
        ("VIDEOCHAT_SFU__ROOM_ADMIN_KEY", None),
        ("VIDEOCHAT_SFU__ROOM_ADMIN_KEY", "example"),
        ("VIDEOCHAT_SFU__ADMIN_SECRET", 'a-long-secret-with-a-"-quote'),
        ("JANUS_PUBLIC_IP", None),
        ("JANUS_PUBLIC_IP", "example"),
        ("JANUS_RTP_PORTS", "20000"),
    ],
)
def test_the_render_refuses_a_missing_or_placeholder_value(
    tmp_path: Path, name: str, value: str | None
) -> None:
    """Janus never starts with the example's secrets, or without them."""
    if value == "example":
        value = _example_value(name)
    folder = tmp_path / "conf"
    result = _render(_render_env(folder, **{name: value}))
    assert result.returncode != 0, result.stderr
    assert name in result.stderr
    # Refused before anything was written: no half-configured Janus to start.
    assert not folder.exists() or not list(folder.iterdir())


def test_nginx_serves_the_janus_api_under_janus_1_and_nothing_else_of_janus(
    tmp_path: Path, janus: Janus
) -> None:
    """Debian's nginx running deploy's site in front of a real Janus (loopback, free ports).

    A session is created with a POST to /janus/1 itself (no redirect), requests under
    /janus/1/ reach Janus's /janus, and Janus's admin requests are refused on that path.
    """
    nginx = test_deploy._nginx_or_skip()
    https_port, http_port = free_port(), free_port()
    site = (DEPLOY.parent / "nginx" / "videochat.conf").read_text()
    for old, new in (
        ("server app:8000", "server 127.0.0.1:9"),  # no app here: nothing listens on 9
        ("server 172.28.0.10:8088", f"server 127.0.0.1:{janus.api_port}"),
        ("listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;"),
        ("listen 80;", f"listen 127.0.0.1:{http_port};"),
        ("listen [::]:443 ssl http2;", ""),
        ("listen [::]:80;", ""),
    ):
        assert old in site, old
        site = site.replace(old, new)
    config = test_deploy.nginx_test_config(tmp_path, site)
    process = subprocess.Popen(
        [nginx, "-p", str(tmp_path), "-c", str(config), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "nginx.err").open("w"),
    )
    token = "deploy-nginx-token"
    admin = {"transaction": "t", "admin_secret": janus.admin_secret}
    added = httpx.post(janus.admin_url, json={"janus": "add_token", "token": token, **admin})
    assert added.json()["janus"] == "success", added.text
    base = f"https://127.0.0.1:{https_port}/janus/1"
    try:
        with httpx.Client(verify=False, timeout=10, headers={"Host": "chat.example.org"}) as http:
            deadline = time.monotonic() + 20
            while True:
                assert process.poll() is None, (tmp_path / "nginx.err").read_text()
                try:
                    info = http.get(f"{base}/info")
                    break
                except httpx.HTTPError:
                    assert time.monotonic() < deadline, (tmp_path / "nginx.err").read_text()
                    time.sleep(0.1)
            assert info.status_code == 200 and "janus.plugin.videoroom" in info.json()["plugins"]
            created = http.post(base, json={"janus": "create", "transaction": "c", "token": token})
            assert created.status_code == 200, created.text
            session = created.json()["data"]["id"]
            alive = http.post(
                f"{base}/{session}", json={"janus": "keepalive", "transaction": "k", "token": token}
            )
            assert alive.json()["janus"] == "ack", alive.text
            # The Janus API path does not take admin requests (those live on another port).
            refused = http.post(base, json={"janus": "add_token", "token": "mine", **admin})
            assert refused.json()["janus"] == "error", refused.text
            # Without a token Janus refuses, through nginx as directly.
            anonymous = http.post(base, json={"janus": "create", "transaction": "x"})
            assert anonymous.json()["error"]["code"] == 403, anonymous.text
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_entrypoint_hands_the_recordings_to_the_app_user_and_drops_root(
    tmp_path: Path,
) -> None:
    """As the container starts it (root): the recordings folder becomes uid 10001's, the
    app image's user, and the command runs as that user."""
    if os.geteuid() != 0:
        pytest.skip("the entrypoint drops privileges only when started as root")
    # Outside pytest's tmp_path: its parents are root's alone, the command is not root.
    with tempfile.TemporaryDirectory() as reachable:
        Path(reachable).chmod(0o755)
        recordings = Path(reachable) / "recordings"
        env = _render_env(tmp_path / "conf", JANUS_RECORDING_DIR=str(recordings))
        shell = "/bin/dash" if Path("/bin/dash").exists() else "/bin/sh"
        result = subprocess.run(
            [shell, str(RENDER), "sh", "-c", 'id -u; id -g; touch "$0/written"', str(recordings)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["10001", "10001"]
        assert (recordings.stat().st_uid, recordings.stat().st_gid) == (10001, 10001)
        assert (recordings / "written").stat().st_uid == 10001
