"""Servers under test: start them pinned to a core, provision users and rooms, stop them.

Each deployment is fresh (its own data folder, its own throwaway PostgreSQL
database) so that one measurement never inherits another's state, and everything
it started is stopped and dropped when it ends, even on error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx

from bench import commit_floor

REPO = Path(__file__).resolve().parent.parent
ROOM_SIZE = 10
PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


OBS_OFF = (
    ("VIDEOCHAT_OBSERVABILITY__METRICS_ENABLED", "false"),
    ("VIDEOCHAT_OBSERVABILITY__REQUEST_LOGS", "false"),
    ("VIDEOCHAT_LOG_LEVEL", "WARNING"),
)
# Rate limits on, as they are by default, with every limit far above what the load
# generator sends (nothing is refused: the counting alone is measured). The other
# targets run with limits off, as the naive bare server has none.
LIMITS_ON = (
    ("VIDEOCHAT_RATE_LIMIT__ENABLED", "true"),
    *(
        (f"VIDEOCHAT_RATE_LIMIT__{limit}", "1000000")
        for limit in (
            "REQUESTS",
            "REQUESTS_PER_IP",
            "USER_WRITES",
            "WS_CONNECTS",
            "WS_CONNECTIONS_PER_IP",
            "WS_CONNECTIONS_PER_USER",
            "WS_FRAMES",
        )
    ),
)
OBS_ON = (
    ("VIDEOCHAT_OBSERVABILITY__METRICS_ENABLED", "true"),
    ("VIDEOCHAT_OBSERVABILITY__REQUEST_LOGS", "true"),
    ("VIDEOCHAT_LOG_LEVEL", "INFO"),
    ("VIDEOCHAT_LOG_JSON", "true"),
)


@dataclass(frozen=True)
class Target:
    """One system under test."""

    name: str
    label: str
    database: str | None = None  # "sqlite" | "postgres"; None for the baseline
    instances: int = 1
    redis: bool = False
    # Extra VIDEOCHAT_* settings, as (name, value) pairs (after the defaults below).
    env: tuple[tuple[str, str], ...] = ()
    # Several instances: every socket of a room on one instance (as a load balancer that
    # hashes the room in /ws/{room}/... places them), not alternating between them.
    room_affine: bool = False

    @property
    def is_baseline(self) -> bool:
        return self.database is None


TARGETS = {
    t.name: t
    for t in (
        Target("baseline", "bare FastAPI broadcast"),
        Target("sqlite", "videochat + SQLite", database="sqlite"),
        Target("postgres", "videochat + PostgreSQL", database="postgres"),
        Target("redis1", "videochat + PostgreSQL + Redis, 1 instance", "postgres", 1, True),
        Target("redis2", "videochat + PostgreSQL + Redis, 2 instances", "postgres", 2, True),
        Target(
            "redis2-rooms",
            "videochat + PostgreSQL + Redis, 2 instances, a room's sockets on one",
            "postgres",
            2,
            True,
            room_affine=True,
        ),
        # Overhead of metrics and logging: the same SQLite server with both off, and
        # with both on and the request/socket log lines really written (level INFO).
        Target("obs-off", "videochat + SQLite, metrics and logs off", "sqlite", env=OBS_OFF),
        Target("obs-on", "videochat + SQLite, metrics and INFO logs on", "sqlite", env=OBS_ON),
        Target("limits", "videochat + SQLite, rate limits on", "sqlite", env=LIMITS_ON),
    )
}


@dataclass
class Options:
    """What every deployment shares."""

    workdir: Path
    server_cores: tuple[int, ...]  # core of instance i is server_cores[i % len]
    redis_url: str
    log_level: str = "WARNING"
    ready_timeout: float = 90.0


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Deployment:
    """``async with Deployment(target, options) as d:`` servers up, then all gone."""

    def __init__(self, target: Target, options: Options) -> None:
        self.target = target
        self.options = options
        self.servers: list[Server] = []
        self.database_name: str | None = None
        self._admin: asyncpg.Connection | None = None
        self._data_dir = Path(tempfile.mkdtemp(prefix=f"{target.name}-", dir=options.workdir))

    async def __aenter__(self) -> Deployment:
        try:
            if self.target.database == "postgres":
                await self._create_database()
            for index in range(self.target.instances):
                self.servers.append(self._spawn(index))
                # One at a time: each `serve` migrates the shared database first.
                await self._wait_ready(self.servers[-1])
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def pids(self) -> list[int]:
        return [server.process.pid for server in self.servers]

    async def stop(self) -> None:
        """Stop the servers (SIGINT, then SIGKILL) and drop what they stored."""
        for server in self.servers:
            _terminate(server.process)
        self.servers = []
        if self._admin is not None:
            with contextlib.suppress(Exception):
                await self._admin.execute(
                    f'DROP DATABASE IF EXISTS "{self.database_name}" WITH (FORCE)'
                )
            await self._admin.close()
            self._admin = None

    # -- measuring ------------------------------------------------------------------------
    async def backend_pids(self) -> list[int]:
        """PostgreSQL backends serving this deployment (their CPU is part of its cost)."""
        if self._admin is None:
            return []
        rows = await self._admin.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1", self.database_name
        )
        return [int(row["pid"]) for row in rows]

    async def commit_floor(self) -> dict[str, Any] | None:
        """One lone commit's latency on this deployment's database and disk (see
        bench.commit_floor); None for the baseline, which stores nothing."""
        if self.target.database == "postgres":
            dsn = f"postgresql://postgres@127.0.0.1:5432/{self.database_name}"
            return await commit_floor.postgres(dsn)
        if self.target.database == "sqlite":
            return await commit_floor.sqlite(self._data_dir / "commit-probe.db")
        return None

    # -- provisioning -------------------------------------------------------------------
    async def plan(self, connections: int, path: Path, *, budget_s: float = 600) -> Path:
        """Write the loadgen's plan: ``connections`` sockets in rooms of ROOM_SIZE
        (fewer if creating the rooms takes longer than ``budget_s``)."""
        room_count = max(1, connections // ROOM_SIZE)
        if self.target.is_baseline:
            rooms = [
                [f"{self.servers[0].ws}/ws/r{r}/u{s}" for s in range(ROOM_SIZE)]
                for r in range(room_count)
            ]
        else:
            rooms = await self._provision(room_count, budget_s)
        await asyncio.to_thread(path.write_text, json.dumps({"rooms": rooms}))
        return path

    async def _provision(self, room_count: int, budget_s: float) -> list[list[str]]:
        # A pool of users, each in many rooms: creating 20k accounts would dominate the
        # run, and a socket's cost does not depend on how many rooms its user is in.
        user_count = ROOM_SIZE * min(10, room_count)
        gate = asyncio.Semaphore(16)
        async with httpx.AsyncClient(base_url=self.servers[0].http, timeout=60) as http:

            async def post(path: str, body: dict[str, Any], token: str = "") -> dict[str, Any]:
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                async with gate:
                    response = await http.post(path, json=body, headers=headers)
                response.raise_for_status()
                answer: dict[str, Any] = response.json()
                return answer

            users = await asyncio.gather(
                *(post("/users", {"username": f"bench{i}"}) for i in range(user_count))
            )
            owner = users[0]["access_token"]
            rooms: list[dict[str, Any]] = []
            deadline = time.monotonic() + budget_s
            # In batches, so a slow server yields fewer rooms rather than an endless set-up.
            while len(rooms) < room_count and time.monotonic() < deadline:
                batch = range(len(rooms), min(room_count, len(rooms) + 200))
                rooms += await asyncio.gather(
                    *(post("/rooms", {"name": f"bench room {r}"}, owner) for r in batch)
                )
        plan = []
        for r, room in enumerate(rooms):
            seats = []
            for seat in range(ROOM_SIZE):
                user = users[(r * ROOM_SIZE + seat) % user_count]
                # Two instances: each room's sockets alternate between them (the worst
                # case: every message goes to both), or all go to one.
                slot = r if self.target.room_affine else r + seat
                server = self.servers[slot % len(self.servers)]
                # v=2: the whole protocol, as the web client asks (without it a socket
                # gets the prototype's frame sequence; see realtime/handshake.py).
                seats.append(
                    f"{server.ws}/ws/{room['id']}/{user['id']}?v=2&token={user['access_token']}"
                )
            plan.append(seats)
        return plan

    # -- processes ----------------------------------------------------------------------
    def _spawn(self, index: int) -> Server:
        port = free_port()
        core = self.options.server_cores[index % len(self.options.server_cores)]
        log = self._data_dir / f"server{index}.log"
        env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}:{REPO}"}
        if self.target.is_baseline:
            command = [sys.executable, "-m", "bench.baseline_server", "--port", str(port)]
        else:
            command = [sys.executable, "-m", "videochat.cli", "serve", "--port", str(port)]
            env.update(self._videochat_env())
        with log.open("wb") as out:
            process = subprocess.Popen(
                ["taskset", "-c", str(core), *command],
                cwd=self._data_dir,  # no stray .env is picked up
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return Server(process=process, port=port, log=log)

    def _videochat_env(self) -> dict[str, str]:
        if self.target.database == "postgres":
            url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{self.database_name}"
        else:
            url = f"sqlite+aiosqlite:///{self._data_dir / 'videochat.db'}"
        env = {
            "VIDEOCHAT_DATA_DIR": str(self._data_dir),
            "VIDEOCHAT_DATABASE_URL": url,
            "VIDEOCHAT_RATE_LIMIT__ENABLED": "false",
            "VIDEOCHAT_LOG_LEVEL": self.options.log_level,
        }
        if self.target.redis:
            env["VIDEOCHAT_REDIS__URL"] = self.options.redis_url
        env.update(self.target.env)
        return env

    async def _wait_ready(self, server: Server) -> None:
        deadline = time.monotonic() + self.options.ready_timeout
        async with httpx.AsyncClient(timeout=5) as http:
            while time.monotonic() < deadline:
                if server.process.poll() is not None:
                    tail = server.log.read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"{self.target.name} server exited:\n{tail}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"{server.http}/health")).status_code == 200:
                        return
                await asyncio.sleep(0.2)
        raise TimeoutError(f"{self.target.name} server not ready on port {server.port}")

    async def _create_database(self) -> None:
        self.database_name = f"videochat_bench_{uuid.uuid4().hex[:12]}"
        self._admin = await asyncpg.connect(PG_ADMIN_DSN)
        await self._admin.execute(f'CREATE DATABASE "{self.database_name}"')


def _terminate(process: subprocess.Popen[bytes]) -> None:
    """SIGINT (uvicorn's graceful stop), SIGKILL if it is not gone within 5 s."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)
