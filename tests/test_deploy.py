"""Every file in deploy/ parses, and says what the service needs (plus the Dockerfile)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.services import IN_CI
from videochat.observability import metrics as _metrics

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
# Every metric family the service exports (with the suffixes PromQL may add).
METRIC = re.compile(r"\bvideochat_[a-z_]+")


def _known_metric_names() -> set[str]:
    from prometheus_client import REGISTRY

    names = set()
    for family in REGISTRY.collect():
        names.update(sample.name for sample in family.samples)
        names.add(family.name)
    names.update(_metrics._RUNTIME_GAUGES)
    for name in list(names):
        for suffix in ("_bucket", "_sum", "_count", "_total", "_created"):
            names.add(name + suffix)
    return names


def test_every_deploy_file_is_checked() -> None:
    checked = {".yml", ".yaml", ".json", ".conf", ".example", ".jcfg", ".sh"}
    files = [path for path in DEPLOY.rglob("*") if path.is_file()]
    assert files
    # Dockerfiles: test_janus_image_*; shell scripts: test_shell_scripts_are_posix.
    unchecked = [p for p in files if p.suffix not in checked and p.name != "Dockerfile"]
    assert not unchecked, "add a check for it"


@pytest.mark.parametrize(
    "path", sorted(DEPLOY.rglob("*.y*ml")), ids=lambda path: str(path.relative_to(DEPLOY))
)
def test_yaml_files_parse(path: Path) -> None:
    assert isinstance(yaml.safe_load(path.read_text()), dict)


def test_json_files_parse() -> None:
    for path in DEPLOY.rglob("*.json"):
        assert isinstance(json.loads(path.read_text()), dict), path


def test_dashboard_and_alerts_use_real_metrics() -> None:
    known = _known_metric_names()
    dashboard = json.loads((DEPLOY / "grafana/dashboards/videochat.json").read_text())
    expressions = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    alerts = yaml.safe_load((DEPLOY / "prometheus/alerts.yml").read_text())
    expressions += [rule["expr"] for group in alerts["groups"] for rule in group["rules"]]
    used = {name for expr in expressions for name in METRIC.findall(expr)}
    assert len(used) >= 15
    assert not sorted(used - known), "unknown metric names"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)) and dashboard["uid"] == "videochat"
    datasource = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/datasources/prometheus.yaml").read_text()
    )
    assert {panel["datasource"]["uid"] for panel in dashboard["panels"]} == {
        datasource["datasources"][0]["uid"]
    }


def test_prometheus_scrapes_the_metrics_endpoint() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "videochat"]
    assert job["metrics_path"] == "/metrics/prometheus"
    # Production closes metrics without the token: Prometheus reads it from a compose
    # secret made from the app's own setting in .env.
    secret_file = job["authorization"]["credentials_file"]
    assert job["authorization"]["type"] == "Bearer"
    assert secret_file == "/run/secrets/metrics_token"
    compose = _compose()
    assert "metrics_token" in compose["services"]["prometheus"]["secrets"]
    token_setting = compose["secrets"]["metrics_token"]["environment"]
    assert token_setting == "VIDEOCHAT_OBSERVABILITY__METRICS_TOKEN"
    assert f"{token_setting}=" in (DEPLOY / "env.example").read_text()
    assert config["rule_files"] == ["alerts.yml"]
    # The video workers serve their own metrics on the port compose gives them.
    (worker,) = [job for job in config["scrape_configs"] if job["job_name"] == "videochat-worker"]
    assert worker["metrics_path"] == "/metrics"
    port = worker["dns_sd_configs"][0]["port"]
    environment = _compose()["services"]["worker"]["environment"]
    assert environment["VIDEOCHAT_OBSERVABILITY__WORKER_METRICS_PORT"] == str(port)


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def test_compose_runs_the_whole_stack() -> None:
    compose = _compose()
    services_ = compose["services"]
    expected = {"postgres", "redis", "migrate", "app", "worker", "nginx", "coturn"}
    assert expected | {"prometheus", "grafana"} <= set(services_)
    app = services_["app"]
    assert app["command"][:2] == ["videochat", "serve"]
    assert services_["worker"]["command"] == ["videochat", "worker"]
    assert services_["migrate"]["command"] == ["videochat", "migrate"]
    assert app["deploy"]["replicas"] >= 2
    assert "/health/ready" in " ".join(app["healthcheck"]["test"])
    environment = app["environment"]
    assert environment["VIDEOCHAT_ENVIRONMENT"] == "production"
    assert environment["VIDEOCHAT_DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert environment["VIDEOCHAT_REDIS__URL"].startswith("redis://")
    # uvicorn trusts forwarded headers from the proxy network only.
    subnet = compose["networks"]["backend"]["ipam"]["config"][0]["subnet"]
    assert f"--forwarded-allow-ips={subnet}" in app["command"]
    # coturn and the app get the same TURN secret.
    assert any("${VIDEOCHAT_TURN__SECRET" in part for part in services_["coturn"]["command"])
    assert "VIDEOCHAT_TURN__SECRET=" in (DEPLOY / "env.example").read_text()


def test_compose_mounts_files_that_exist() -> None:
    for name, service in _compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                if source == "./tls":
                    continue  # the operator's certificates
                assert (DEPLOY / source).exists(), f"{name}: {source}"
        build = service.get("build")
        if build:
            assert (DEPLOY / build["context"] / build["dockerfile"]).is_file()


def test_env_example_lines_are_assignments() -> None:
    for line in (DEPLOY / "env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            assert re.match(r"^[A-Z][A-Z0-9_]*=\S", line), line


def test_compose_config_with_docker(tmp_path: Path) -> None:
    docker = shutil.which("docker")
    has_compose = docker is not None and (
        subprocess.run([docker, "compose", "version"], capture_output=True, check=False).returncode
        == 0
    )
    if docker is None or not has_compose:
        pytest.skip("docker compose is not installed; the YAML checks above still ran")
    # A copy with env.example as its .env, so the check never needs real secrets.
    copy = tmp_path / "deploy"
    shutil.copytree(DEPLOY, copy)
    shutil.copy(copy / "env.example", copy / ".env")
    result = subprocess.run(
        [docker, "compose", "-f", str(copy / "compose.yaml"), "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def _nginx_statements(text: str) -> list[tuple[int, str]]:
    """(depth, statement) pairs; fails on unbalanced braces or an unterminated directive."""
    without_comments = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    statements: list[tuple[int, str]] = []
    depth = 0
    current = ""
    for char in without_comments:
        if char in "{;}":
            statement = " ".join(current.split())
            if char == "}":
                assert not statement, f"directive without ';': {statement}"
                depth -= 1
                assert depth >= 0, "unbalanced '}'"
            else:
                assert statement, "empty statement"
                statements.append((depth, statement + (" {" if char == "{" else "")))
                depth += char == "{"
            current = ""
        else:
            current += char
    assert depth == 0, "unclosed block"
    assert not current.strip(), f"trailing text: {current.strip()}"
    return statements


def test_nginx_config_is_well_formed_and_proxies_websockets() -> None:
    text = (DEPLOY / "nginx/videochat.conf").read_text()
    statements = [statement for _, statement in _nginx_statements(text)]
    for required in (
        "map $http_upgrade $connection_upgrade {",
        "upstream videochat {",
        "proxy_http_version 1.1",
        "proxy_set_header Upgrade $http_upgrade",
        "proxy_set_header Connection $connection_upgrade",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for",
        "proxy_set_header X-Forwarded-Proto $scheme",
        "proxy_set_header Host $host",
        "listen 443 ssl http2",
        "location /ws/ {",
        "proxy_request_buffering off",
    ):
        assert required in statements, required
    assert any(s.startswith("ssl_certificate ") for s in statements)
    assert any(s.startswith("client_max_body_size ") for s in statements)
    # The app, or a Janus instance's Janus API (test_nginx_proxies_the_janus_api_only).
    assert all(
        s.endswith("http://videochat") or re.fullmatch(r"proxy_pass http://janus_\d+/janus/?", s)
        for s in statements
        if s.startswith("proxy_pass ")
    )


def _nginx_or_skip() -> str:
    """Debian's nginx binary (``make test`` installs it); skip without it, fail in CI.

    ``VIDEOCHAT_TEST_NGINX`` names another build to check the config with (a current
    nginx built from source, say: Debian 12 has 1.22 only).
    """
    nginx = (
        os.environ.get("VIDEOCHAT_TEST_NGINX")
        or shutil.which("nginx")
        or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").is_file() else None)
    )
    if nginx is None or shutil.which("openssl") is None:
        message = "nginx or openssl is missing (apt-get install nginx openssl; make test does)"
        if IN_CI:
            pytest.fail(f"{message} (CI must have it)", pytrace=False)
        pytest.skip(f"{message}; the structural check above still ran")
    return nginx


def nginx_test_config(tmp_path: Path, site: str) -> Path:
    """An nginx.conf that includes ``site`` as the nginx image's conf.d does, under tmp_path.

    The site's certificate paths become a throwaway self-signed pair.
    """
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
         "/CN=test", "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")],
        check=True,
        capture_output=True,
    )  # fmt: skip
    site = site.replace("/etc/nginx/tls/fullchain.pem", str(tmp_path / "cert.pem"))
    site = site.replace("/etc/nginx/tls/privkey.pem", str(tmp_path / "key.pem"))
    (tmp_path / "site.conf").write_text(site)
    mime_types = Path("/etc/nginx/mime.types")
    includes = f"include {mime_types};\n" if mime_types.is_file() else ""
    # Every path nginx opens under the test's prefix: a build's compiled-in defaults
    # (nginx.org's logs/, Debian's /var/log/nginx) may not exist here.
    (tmp_path / "logs").mkdir()
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log stderr;\nevents {{}}\n"
        f"http {{\n{includes}access_log {tmp_path}/logs/access.log;\n"
        f"include {tmp_path}/site.conf;\n}}\n"
    )
    return tmp_path / "nginx.conf"


def test_nginx_accepts_the_config(tmp_path: Path) -> None:
    """`nginx -t` on the shipped site, included as the nginx image's conf.d does it."""
    nginx = _nginx_or_skip()
    site = (DEPLOY / "nginx/videochat.conf").read_text()
    # Outside compose there is no "app" host.
    site = site.replace("server app:8000", "server 127.0.0.1:8000")
    assert "server 172.28.0.10:8088" in site  # an address: nginx -t resolves no name here
    nginx_test_config(tmp_path, site)
    result = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
        capture_output=True,
        text=True,
        check=False,
    )
    version = subprocess.run([nginx, "-v"], capture_output=True, text=True, check=False).stderr
    assert result.returncode == 0, f"{version.strip()}: {result.stderr}"
    # nginx 1.25.1+ calls "listen ... http2" deprecated, the price of one file for both.
    warnings = [
        line
        for line in result.stderr.splitlines()
        if "[warn]" in line and '"listen ... http2" directive is deprecated' not in line
    ]
    assert not warnings, result.stderr


def test_nginx_config_avoids_directives_newer_than_debian_12() -> None:
    """Debian 12 ships nginx 1.22: directives from later versions break `nginx -t` there."""
    statements = [s for _, s in _nginx_statements((DEPLOY / "nginx/videochat.conf").read_text())]
    # name -> the nginx version that added it (https://nginx.org/en/docs/dirindex.html).
    newer = {
        "http2": "1.25.1",
        "http3": "1.25.0",
        "quic_retry": "1.25.0",
        "ssl_object_cache_inheritable": "1.27.4",
    }
    used = {s.split()[0] for s in statements}
    assert not {name: since for name, since in newer.items() if name in used}


# What nginx releases after Debian 12's 1.22 removed, made obsolete or deprecated, from
# nginx's own change log (docs/xml/nginx/changes.xml) and the directives its source still
# answers with "is obsolete" (checked up to 1.31.4).
NGINX_GONE = {
    "ssl": "1.25.1: not supported any more (listen ... ssl)",
    "http2_push": "1.25.1: HTTP/2 server push removed, ignored with a warning",
    "http2_push_preload": "1.25.1: HTTP/2 server push removed, ignored with a warning",
    "http2_recv_timeout": "obsolete: client_header_timeout",
    "http2_idle_timeout": "obsolete: keepalive_timeout",
    "http2_max_requests": "obsolete: keepalive_requests",
    "http2_max_field_size": "obsolete: large_client_header_buffers",
    "http2_max_header_size": "obsolete: large_client_header_buffers",
}
# Defaults later releases changed: set explicitly, the proxy behaves the same on 1.22
# and on current nginx.
NGINX_CHANGED_DEFAULTS = {
    "proxy_http_version 1.1": "1.29.7 made 1.1 the default (1.0 before)",
    "keepalive 32": "1.29.7 keeps upstream connections alive by default",
    "proxy_set_header Connection $connection_upgrade": "1.29.7 stopped sending Connection",
    "proxy_set_header Host $host": "1.31.4 always sends Host",
    "ssl_protocols TLSv1.2 TLSv1.3": "1.23.4 and 1.27.3 changed the default protocols",
}


def test_nginx_config_uses_nothing_later_nginx_removed_or_changed() -> None:
    """Only 1.22 runs here (Debian 12; no newer nginx in its archive): the rest is read.

    The one deprecation kept is ``listen ... http2`` (1.25.1 wants ``http2 on``, which
    1.22 does not know); newer nginx accepts it with a warning.
    """
    statements = [s for _, s in _nginx_statements((DEPLOY / "nginx/videochat.conf").read_text())]
    used = {s.split()[0] for s in statements}
    assert not {name: why for name, why in NGINX_GONE.items() if name in used}
    for statement, why in NGINX_CHANGED_DEFAULTS.items():
        assert statement in statements, f"{statement} ({why})"
    # 1.23.4 warns when a listening socket's protocol parameters differ between servers.
    listens: dict[str, set[str]] = {}
    for statement in statements:
        if statement.startswith("listen "):
            address, *parameters = statement.split()[1:]
            listens.setdefault(address, set()).add(" ".join(parameters))
    assert all(len(forms) == 1 for forms in listens.values()), listens
    http2 = [s for s in statements if s.startswith("listen ") and "http2" in s.split()]
    assert http2 == ["listen 443 ssl http2", "listen [::]:443 ssl http2"]


def _coturn_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for raw in (DEPLOY / "coturn/turnserver.conf").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        assert re.fullmatch(r"[a-z0-9_-]+", key), f"not a coturn option: {line}"
        settings.setdefault(key, []).append(value)
    return settings


def test_coturn_uses_the_turn_rest_api_secret() -> None:
    conf = _coturn_settings()
    assert "use-auth-secret" in conf and conf["static-auth-secret"][0]
    # The long-term credential mechanism would ignore the shared secret.
    assert "lt-cred-mech" not in conf
    assert conf["realm"][0] and conf["listening-port"] == ["3478"]
    low, high = int(conf["min-port"][0]), int(conf["max-port"][0])
    assert 1024 < low < high <= 65535
    denied = conf["denied-peer-ip"]
    for private in ("10.0.0.0-10.255.255.255", "172.16.0.0-172.31.255.255", "127.0.0.0-"):
        assert any(entry.startswith(private) for entry in denied), private
    assert "fingerprint" in conf and "no-cli" in conf


def test_dockerfile_builds_from_the_lock_and_runs_unprivileged() -> None:
    text = (ROOT / "Dockerfile").read_text()
    lines = [
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    ]
    assert lines[0].startswith("FROM ") or lines[0].startswith("# syntax")
    assert "uv sync --frozen --no-dev" in text
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in {"root", "0"}
    assert "EXPOSE 8000" in lines
    assert any(line.startswith("HEALTHCHECK") for line in lines) and "/health/live" in text
    cmd = [line for line in lines if line.startswith("CMD ")][-1]
    assert json.loads(cmd[4:])[:2] == ["videochat", "serve"]
    for line in lines:
        if line.startswith("COPY ") and "--from=" not in line:
            *sources, _ = line.split()[1:]
            for source in sources:
                assert (ROOT / source).exists(), source


def test_the_runtime_image_has_janus_pp_rec_for_recorded_calls() -> None:
    # The worker composes a call's recording with janus-pp-rec (media/recordings.py).
    runtime_stage = (ROOT / "Dockerfile").read_text().rsplit("\nFROM ", 1)[1]
    assert "apt-get install -y --no-install-recommends janus-tools" in runtime_stage


def test_janus_needs_tokens_and_keeps_its_admin_api_private() -> None:
    core = (DEPLOY / "janus" / "janus.jcfg").read_text()
    http = (DEPLOY / "janus" / "janus.transport.http.jcfg").read_text()
    videoroom = (DEPLOY / "janus" / "janus.plugin.videoroom.jcfg").read_text()
    assert re.search(r"^\s*token_auth = true", core, re.M)
    assert re.search(r'^\s*admin_secret = "\S+"', core, re.M)
    # Tokens only: an API secret would be a second, shared way in.
    assert not re.search(r"^\s*api_secret", core, re.M)
    assert "libjanus_websockets.so" in core and "libjanus_videoroom.so" not in core
    assert re.search(r'^\s*admin_acl = "\S+"', http, re.M)
    assert re.search(r'^\s*admin_ip = "\S+"', http, re.M)
    assert re.search(r'^\s*admin_key = "\S+"', videoroom, re.M)
    # nginx proxies the Janus API to browsers, never the admin API.
    nginx = (DEPLOY / "nginx" / "videochat.conf").read_text()
    assert "7088" not in nginx and "/admin" not in nginx


# Janus (calls on an SFU) in compose: profile "sfu", a fixed address on the backend network.
JANUS_ADDRESS = "172.28.0.10"


def _env_example() -> dict[str, str]:
    """env.example's assignments, the commented-out ones too (what turns the SFU on)."""
    values = {}
    for line in (DEPLOY / "env.example").read_text().splitlines():
        match = re.match(r"^#? ?([A-Z][A-Z0-9_]*)=(\S+)$", line)
        if match:
            values[match[1]] = match[2]
    return values


def test_compose_runs_janus_on_the_sfu_profile() -> None:
    compose = _compose()
    janus = compose["services"]["janus"]
    # Opt-in: it needs a public IP and UDP ports the rest of the stack does not.
    assert janus["profiles"] == ["sfu"]
    assert janus["build"] == {"context": "janus", "dockerfile": "Dockerfile"}
    assert (DEPLOY / "janus" / "render-config.sh").is_file()
    address = janus["networks"]["backend"]["ipv4_address"]
    assert address == JANUS_ADDRESS
    subnet = compose["networks"]["backend"]["ipam"]["config"][0]["subnet"]
    assert address.rsplit(".", 1)[0] == subnet.split("/")[0].rsplit(".", 1)[0]
    environment = janus["environment"]
    assert environment["JANUS_ADMIN_IP"] == address
    assert subnet.startswith(environment["JANUS_ADMIN_ACL"])
    # The templates, mounted where render-config.sh reads them by default.
    assert "./janus:/usr/share/janus-videochat:ro" in janus["volumes"]
    render = (DEPLOY / "janus" / "render-config.sh").read_text()
    assert "JANUS_TEMPLATE_DIR:-/usr/share/janus-videochat" in render
    # Every variable it takes from .env is in env.example.
    example = _env_example()
    referenced = {
        name
        for value in [*environment.values(), *janus["ports"]]
        for name in re.findall(r"\$\{([A-Z0-9_]+)", str(value))
    }
    assert {"VIDEOCHAT_SFU__ADMIN_SECRET", "VIDEOCHAT_SFU__ROOM_ADMIN_KEY"} <= referenced
    assert {"JANUS_PUBLIC_IP", "JANUS_RTP_PORTS", "VIDEOCHAT_PUBLIC_URL"} <= referenced
    assert not sorted(referenced - set(example)), "add them to env.example"
    # The media range: published as UDP, the same numbers inside and out.
    (published,) = janus["ports"]
    range_ = "${JANUS_RTP_PORTS:-" + example["JANUS_RTP_PORTS"] + "}"
    assert published == f"{range_}:{range_}/udp"
    low, high = map(int, example["JANUS_RTP_PORTS"].split("-"))
    assert 1024 < low < high <= 65535
    # render-config.sh falls back to the same range.
    render = (DEPLOY / "janus" / "render-config.sh").read_text()
    assert "JANUS_RTP_PORTS:-" + example["JANUS_RTP_PORTS"] + "}" in render


def _mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of a service's short-syntax volumes."""
    return [(volume.split(":")[0], volume.split(":")[1]) for volume in service["volumes"]]


def test_the_app_reaches_janus_and_shares_its_recordings() -> None:
    compose = _compose()
    services_ = compose["services"]
    example = _env_example()
    # Commented out in env.example (the SFU is opt-in), naming compose's Janus.
    assert example["COMPOSE_PROFILES"] == "sfu"
    assert example["VIDEOCHAT_SFU__JANUS_URL"] == f"http://{JANUS_ADDRESS}:8088/janus"
    assert example["VIDEOCHAT_SFU__ADMIN_URL"] == f"http://{JANUS_ADDRESS}:7088/admin"
    assert example["VIDEOCHAT_SFU__PUBLIC_URL"] == "/janus/1"
    text = (DEPLOY / "env.example").read_text()
    assert "\n# VIDEOCHAT_SFU__JANUS_URL=" in text and "\n# COMPOSE_PROFILES=sfu" in text
    janus_volumes = {target: source for source, target in _mounts(services_["janus"])}
    janus_dir = services_["janus"]["environment"]["JANUS_RECORDING_DIR"]
    assert janus_volumes[janus_dir] == "recordings"
    for name in ("app", "worker"):
        service = services_[name]
        environment = service["environment"]
        mounts = {target: source for source, target in _mounts(service)}
        assert mounts[environment["VIDEOCHAT_SFU__RECORDING_DIR"]] == "recordings", name
        assert environment["VIDEOCHAT_SFU__JANUS_RECORDING_DIR"] == janus_dir, name
        # The secrets come from .env (env_file), like every other setting.
        assert service["env_file"] == ".env"
    assert "recordings" in compose["volumes"]


def test_janus_image_is_debians_package_run_by_the_entrypoint() -> None:
    text = (DEPLOY / "janus" / "Dockerfile").read_text()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("#")]
    assert lines[0] == "FROM debian:12-slim"
    assert "apt-get install -y --no-install-recommends janus janus-tools" in text
    for line in lines:
        if line.startswith("COPY "):
            *sources, _ = line.split()[1:]
            assert all((DEPLOY / "janus" / source).is_file() for source in sources), line
    entrypoint = json.loads(next(line for line in lines if line.startswith("ENTRYPOINT "))[11:])
    assert entrypoint[-1] == "/usr/local/bin/render-config.sh"
    command = json.loads(next(line for line in lines if line.startswith("CMD "))[4:])
    assert command[:3] == ["janus", "-F", "/etc/janus-videochat"]
    # Janus runs as the app image's uid (the recordings volume is shared).
    uid = re.search(r"useradd .*--uid (\d+)", (ROOT / "Dockerfile").read_text())
    assert uid and f"--uid {uid[1]} --gid {uid[1]}" in text
    assert f"JANUS_RUN_AS:-{uid[1]}:{uid[1]}" in (DEPLOY / "janus" / "render-config.sh").read_text()


def test_shell_scripts_are_posix() -> None:
    shells = [shell for shell in ("/bin/dash", "/bin/sh") if Path(shell).exists()]
    scripts = sorted(DEPLOY.rglob("*.sh"))
    assert DEPLOY / "janus" / "render-config.sh" in scripts
    for path in scripts:
        assert path.read_text().startswith("#!/bin/sh\n"), path
        for shell in shells:
            result = subprocess.run([shell, "-n", str(path)], capture_output=True, text=True)
            assert result.returncode == 0, f"{shell} {path}: {result.stderr}"


def test_nginx_proxies_the_janus_api_only() -> None:
    statements = _nginx_statements((DEPLOY / "nginx/videochat.conf").read_text())
    blocks: dict[str, list[str]] = {}
    current = None
    for depth, statement in statements:
        if statement.endswith(" {"):
            current = statement[:-2] if depth <= 1 else current
        elif current and depth >= 1:
            blocks.setdefault(current, []).append(statement)
    assert blocks["upstream janus_1"][0] == f"server {JANUS_ADDRESS}:8088"
    # /janus/1 itself (sessions are created there) and everything under it.
    for location, target in (
        ("location = /janus/1", "http://janus_1/janus"),
        ("location /janus/1/", "http://janus_1/janus/"),
    ):
        settings = blocks[location]
        assert f"proxy_pass {target}" in settings, location
        # Janus holds the client's long poll (GET /janus/<session>) for up to 30 s.
        (timeout,) = [s for s in settings if s.startswith("proxy_read_timeout ")]
        assert int(timeout.split()[1].removesuffix("s")) > 30
        # JSON requests: not the 2 GiB upload limit of the server block.
        assert any(s.startswith("client_max_body_size ") and s.endswith("k") for s in settings)
    assert "proxy_buffering off" in blocks["location /janus/1/"]
    janus_passes = [s for _, s in statements if s.startswith("proxy_pass http://janus")]
    assert janus_passes and all(s.split("/", 3)[3].startswith("janus") for s in janus_passes)
    # Never the admin API, by path or by port.
    assert not [s for _, s in statements if "/admin" in s or ":7088" in s]


def test_coturn_relays_to_janus_and_nowhere_else_private() -> None:
    conf = _coturn_settings()
    # allowed-peer-ip punches exactly Janus's address through the private-range denials.
    assert conf["allowed-peer-ip"] == [JANUS_ADDRESS]
    assert _compose()["services"]["janus"]["networks"]["backend"]["ipv4_address"] == JANUS_ADDRESS
    # No TCP relays: one to that address would reach Janus's HTTP and admin APIs.
    assert "no-tcp-relay" in conf


def test_coturn_with_the_deploy_config_admits_janus_as_the_only_private_peer(
    tmp_path: Path,
) -> None:
    """The real coturn, deploy's rules: a permission for Janus's address, 403 for its neighbour.

    Only permissions are asked for (a ChannelBind names the peer): nothing is ever sent
    to those addresses. coturn listens and relays on loopback, without TLS.
    """
    from tests.web import coturn

    if not coturn.available():
        message = "coturn is missing (apt-get install coturn; make test does)"
        if IN_CI:
            pytest.fail(f"{message} (CI must have it)", pytrace=False)
        pytest.skip(message)
    port = coturn.free_udp_port()
    secret = "deploy-test-secret"
    local = (
        "cert=", "pkey=", "tls-listening-port=", "listening-port=", "log-file=",
        "static-auth-secret=",
    )  # fmt: skip
    lines = [
        line
        for line in (DEPLOY / "coturn/turnserver.conf").read_text().splitlines()
        if not line.startswith(local)
    ]
    lines += [
        f"listening-port={port}", "listening-ip=127.0.0.1", "relay-ip=127.0.0.1",
        f"static-auth-secret={secret}", "no-tls", "no-dtls", "no-stdout-log",
        f"log-file={tmp_path / 'turnserver.log'}", f"pidfile={tmp_path / 'turnserver.pid'}",
        f"userdb={tmp_path / 'turndb'}",
    ]  # fmt: skip
    (tmp_path / "turnserver.conf").write_text("\n".join(lines) + "\n")

    class DeployCoturn(coturn.Coturn):
        def command(self) -> list[str]:
            return [str(coturn.TURNSERVER), "-c", str(tmp_path / "turnserver.conf")]

    server = DeployCoturn(tmp_path, secret, port)
    server.start()
    try:
        username = f"{int(time.time()) + 600}:deploy-test"
        codes = asyncio.run(
            _channel_bind_codes(
                ("127.0.0.1", port),
                username,
                coturn.rest_credentials(secret, username),
                [JANUS_ADDRESS, "172.28.0.11", "10.0.0.5"],
            )
        )
    finally:
        server.stop()
    assert codes == {JANUS_ADDRESS: None, "172.28.0.11": 403, "10.0.0.5": 403}, server.log()


async def _channel_bind_codes(
    server: tuple[str, int], username: str, password: str, peers: list[str]
) -> dict[str, int | None]:
    """Each peer's ChannelBind answer from coturn: None when granted, else the error code."""
    from aioice import stun, turn

    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: turn.TurnClientUdpProtocol(
            server, username=username, password=password, lifetime=600, channel_refresh_time=500
        ),
        remote_addr=server,
    )
    codes: dict[str, int | None] = {}
    try:
        await asyncio.wait_for(protocol.connect(), timeout=10)
        for channel, peer in enumerate(peers, start=0x4000):
            try:
                await asyncio.wait_for(protocol.channel_bind(channel, (peer, 20000)), timeout=10)
                codes[peer] = None
            except stun.TransactionFailed as failure:
                codes[peer] = failure.response.attributes["ERROR-CODE"][0]
        await protocol.delete()
    finally:
        transport.close()
    return codes
