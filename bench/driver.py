"""The orchestrator's side of the load generator, and one measured step."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from bench import procstat
from bench.deploy import REPO, ROOM_SIZE, Deployment


class LoadGenError(RuntimeError):
    pass


class LoadGen:
    """``bench.loadgen --stdio`` in its own process, pinned to its own core."""

    def __init__(self, core: int, log: Path) -> None:
        self.core = core
        self.log = log
        self._process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> LoadGen:
        with self.log.open("ab") as err:
            self._process = await asyncio.create_subprocess_exec(
                "taskset", "-c", str(self.core),
                sys.executable, "-m", "bench.loadgen", "--stdio",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
                env={**os.environ, "PYTHONPATH": str(REPO)},
                limit=2**20,
            )  # fmt: skip
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        process = self._process
        if process is None or process.returncode is not None:
            return
        try:
            assert process.stdin is not None
            process.stdin.write(b'{"cmd": "quit"}\n')
            await process.stdin.drain()
            await asyncio.wait_for(process.wait(), 20)
        except (TimeoutError, ConnectionError):
            process.kill()
            await process.wait()

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    async def call(self, command: dict[str, Any], wait_s: float) -> dict[str, Any]:
        """Send one command and wait (bounded) for its answer."""
        process = self._process
        assert process is not None and process.stdin is not None and process.stdout is not None
        process.stdin.write(json.dumps(command).encode() + b"\n")
        await process.stdin.drain()
        line = await asyncio.wait_for(process.stdout.readline(), wait_s)
        if not line:
            raise LoadGenError(f"load generator exited; see {self.log}")
        answer: dict[str, Any] = json.loads(line)
        if not answer.pop("ok", False):
            raise LoadGenError(f"{command['cmd']}: {answer.get('error')}")
        return answer

    async def connect(
        self,
        plan: Path,
        *,
        compression: bool,
        append: bool = False,
        concurrency: int = 50,
        budget_s: float = 300,
    ) -> dict[str, Any]:
        """Open the plan's sockets; the loadgen stops starting new ones after budget_s."""
        command = {
            "cmd": "connect",
            "plan": str(plan),
            "compression": compression,
            "append": append,
            "concurrency": concurrency,
            "budget_s": budget_s,
        }
        # Those already started may take their own open timeout (30 s) to finish.
        return await self.call(command, wait_s=budget_s + 60)

    async def settle(self, quiet: float = 0.5, limit: float = 10) -> None:
        await self.call({"cmd": "settle", "quiet": quiet, "limit": limit}, wait_s=limit + 10)

    async def close(self) -> None:
        await self.call({"cmd": "close"}, wait_s=60)


async def measure(
    loadgen: LoadGen,
    deployment: Deployment,
    deliveries_per_s: float,
    *,
    seconds: float,
    size: int,
    drain: float = 3.0,
) -> dict[str, Any]:
    """One step at a target delivery rate, with the server's CPU cost around it."""
    await loadgen.settle()
    brokers = procstat.pids_named("redis-server") if deployment.target.redis else []
    cores = procstat.CoreTimes.read()
    server_before = procstat.tree_cpu(deployment.pids)
    others_before = _cpu_by_pid(await deployment.backend_pids() + brokers)
    started = time.monotonic()
    command = {
        "cmd": "step",
        "rate": deliveries_per_s / ROOM_SIZE,
        "seconds": seconds,
        "drain": drain,
        "size": size,
    }
    result = await loadgen.call(command, wait_s=seconds + drain + 30)
    wall = time.monotonic() - started
    server = procstat.tree_cpu(deployment.pids) - server_before
    backends = await deployment.backend_pids()
    database = _cpu_delta(backends, others_before)
    broker = _cpu_delta(brokers, others_before)
    delivered = max(1, result["delivered"])
    result.update(
        target_per_s=round(deliveries_per_s),
        server_cpu=round(server / wall, 3),
        server_us_per_delivery=round(server / delivered * 1e6, 2),
        db_us_per_delivery=round(database / delivered * 1e6, 2),
        broker_us_per_delivery=round(broker / delivered * 1e6, 2),
        cores_busy=procstat.CoreTimes.read().busy_since(cores),
    )
    return result


def _cpu_by_pid(pids: list[int]) -> dict[int, float]:
    return {pid: procstat.cpu_seconds(pid) for pid in pids}


def _cpu_delta(pids: list[int], before: dict[int, float]) -> float:
    """CPU used since ``before`` by the processes alive now; a process that started
    meanwhile counts whole, one that ended meanwhile is missed (pool churn)."""
    return sum(procstat.cpu_seconds(pid) - before.get(pid, 0.0) for pid in pids)


def good(step: dict[str, Any], p99_limit_ms: float, *, strict: bool = False) -> bool:
    """Every delivery arrived, no socket was dropped, and p99 is within the limit;
    ``strict``: and none arrived twice or out of order."""
    p99 = step["p99_ms"]
    return (
        p99 is not None
        and p99 <= p99_limit_ms
        and step["lost"] == 0
        and (not strict or step.get("out_of_order", 0) == 0)
        and step["unexpected_closes"] == 0
    )
