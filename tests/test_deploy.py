"""Every file in deploy/ parses, and says what the service needs (plus the Dockerfile)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
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
    checked = {".yml", ".yaml", ".json", ".conf", ".example", ".jcfg"}
    files = [path for path in DEPLOY.rglob("*") if path.is_file()]
    assert files
    assert not [path for path in files if path.suffix not in checked], "add a check for it"


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
    assert all(s.endswith("http://videochat") for s in statements if s.startswith("proxy_pass "))


def _nginx_or_skip() -> str:
    """Debian's nginx binary (``make test`` installs it); skip without it, fail in CI."""
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").is_file() else None
    )
    if nginx is None or shutil.which("openssl") is None:
        message = "nginx or openssl is missing (apt-get install nginx openssl; make test does)"
        if IN_CI:
            pytest.fail(f"{message} (CI must have it)", pytrace=False)
        pytest.skip(f"{message}; the structural check above still ran")
    return nginx


def test_nginx_accepts_the_config(tmp_path: Path) -> None:
    """`nginx -t` on the shipped site, included as the nginx image's conf.d does it."""
    nginx = _nginx_or_skip()
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
         "/CN=test", "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")],
        check=True,
        capture_output=True,
    )  # fmt: skip
    site = (DEPLOY / "nginx/videochat.conf").read_text()
    # Outside compose there is no "app" host; the certificates are the throwaway ones.
    site = site.replace("server app:8000", "server 127.0.0.1:8000")
    site = site.replace("/etc/nginx/tls/fullchain.pem", str(tmp_path / "cert.pem"))
    site = site.replace("/etc/nginx/tls/privkey.pem", str(tmp_path / "key.pem"))
    (tmp_path / "site.conf").write_text(site)
    mime_types = Path("/etc/nginx/mime.types")
    includes = f"include {mime_types};\n" if mime_types.is_file() else ""
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log stderr;\nevents {{}}\n"
        f"http {{\n{includes}include {tmp_path}/site.conf;\n}}\n"
    )
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
