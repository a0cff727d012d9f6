"""What the read cache does for ``GET /rooms/{id}``: requests/s and latency, on and off.

    uv run python -m bench.cache            # 4 servers x 3 rounds of 10 s
    uv run python -m bench.cache --quick    # 4 servers x 2 rounds of 5 s, ~1 minute

For SQLite and PostgreSQL, a server with the cache on and one with it off
(``VIDEOCHAT_CACHE__ENABLED``), each fresh, pinned to core 0. It gets a public room
with 10 members, then a load generator pinned to core 1 (``wrk`` when installed,
otherwise a bounded asyncio keep-alive loop in its own process) asks for that room with N
connections, in rounds that alternate between the servers so a noisy neighbour hurts
both alike. Anonymous requests: a token would add the (uncached) token-user lookup
to both. Results: ``bench/results/cache-<time>.{json,md}`` (and ``cache-latest.*``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.deploy import REPO, Deployment, Options, Target

RESULTS = REPO / "bench" / "results"
MEMBERS = 10


def _cache(enabled: bool) -> tuple[tuple[str, str], ...]:
    return (("VIDEOCHAT_CACHE__ENABLED", "true" if enabled else "false"),)


TARGETS = [
    Target("sqlite-off", "SQLite, cache off", "sqlite", env=_cache(False)),
    Target("sqlite-on", "SQLite, cache on", "sqlite", env=_cache(True)),
    Target("postgres-off", "PostgreSQL, cache off", "postgres", env=_cache(False)),
    Target("postgres-on", "PostgreSQL, cache on", "postgres", env=_cache(True)),
]
# Quiet servers: request log lines are not what is measured here.
QUIET = (("VIDEOCHAT_LOG_LEVEL", "WARNING"),)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def provision(base: str) -> str:
    """A public room with MEMBERS members; its URL."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        users = [
            (await http.post("/users", json={"username": f"bench{i}"})).json()
            for i in range(MEMBERS)
        ]
        owner = {"Authorization": f"Bearer {users[0]['access_token']}"}
        room = (await http.post("/rooms", json={"name": "bench room"}, headers=owner)).json()
        for user in users[1:]:
            headers = {"Authorization": f"Bearer {user['access_token']}"}
            (await http.post(f"/rooms/{room['id']}/join", headers=headers)).raise_for_status()
        check = await http.get(f"/rooms/{room['id']}")
        check.raise_for_status()
        assert len(check.json()["users"]) == MEMBERS
    return f"{base}/rooms/{room['id']}"


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip()).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def run_wrk(url: str, *, core: int, seconds: float, connections: int) -> dict[str, Any]:
    """One wrk run (one thread, pinned): requests/s, p50, p99."""
    output = subprocess.run(
        ["taskset", "-c", str(core), "wrk", "-t1", f"-c{connections}", f"-d{round(seconds)}s",
         "--latency", "--timeout", "5s", url],
        capture_output=True, text=True, timeout=seconds + 30, check=True,
    ).stdout  # fmt: skip
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", output, re.MULTILINE))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: (.*)$", output, re.MULTILINE)
    return {
        "tool": "wrk",
        "requests": int(re.search(r"(\d+) requests in", output).group(1)),  # type: ignore[union-attr]
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
        "p50_ms": _ms(latency["50"]),
        "p99_ms": _ms(latency["99"]),
        "errors": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else "",
    }


def run_streams(url: str, *, core: int, seconds: float, connections: int) -> dict[str, Any]:
    """The fallback without wrk: this module's ``--loadgen-url`` loop in its own pinned process."""
    output = subprocess.run(
        ["taskset", "-c", str(core), sys.executable, "-m", "bench.cache", "--loadgen-url", url,
         "--seconds", str(seconds), "--connections", str(connections)],
        capture_output=True, text=True, timeout=seconds + 60, check=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    ).stdout  # fmt: skip
    result: dict[str, Any] = json.loads(output)
    return result


async def stream_load(url: str, seconds: float, connections: int) -> dict[str, Any]:
    """GET ``url`` over ``connections`` keep-alive sockets for ``seconds`` (at most 200k).

    Plain asyncio streams, not an HTTP client library: httpx's own per-request cost
    would make the load generator, not the server, the limit.
    """
    parsed = httpx.URL(url)
    request = (
        f"GET {parsed.raw_path.decode()} HTTP/1.1\r\nHost: {parsed.host}:{parsed.port}\r\n\r\n"
    ).encode()
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds

    async def loop() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(parsed.host, parsed.port)
        try:
            while time.monotonic() < deadline and len(latencies) < 200_000:
                started = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - started)
                errors += 0 if head.startswith(b"HTTP/1.1 200") else 1
        finally:
            writer.close()

    begun = time.monotonic()
    await asyncio.gather(*(loop() for _ in range(connections)))
    elapsed = time.monotonic() - begun
    latencies.sort()
    return {
        "tool": "asyncio streams",
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
        "errors": errors,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    tool = "wrk" if shutil.which("wrk") and not args.no_wrk else "asyncio streams"
    load = run_wrk if tool == "wrk" else run_streams
    workdir = Path(tempfile.mkdtemp(prefix="videochat-bench-cache-"))
    options = Options(workdir=workdir, server_cores=(args.server_core,), redis_url="")
    selected = [t for t in TARGETS if t.name.split("-")[0] in args.databases.split(",")]
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "tool": tool,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "connections": args.connections,
        "cpus": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
        "targets": {},
    }
    try:
        async with contextlib.AsyncExitStack() as stack:
            deployments: dict[str, tuple[Deployment, str]] = {}
            for target in selected:
                quiet = Target(target.name, target.label, target.database, env=QUIET + target.env)
                deployment = await stack.enter_async_context(Deployment(quiet, options))
                url = await provision(deployment.servers[0].http)
                deployments[target.name] = (deployment, url)
                log(f"{target.name}: up, room with {MEMBERS} members")
            for _, url in deployments.values():  # warm-up: code paths, pools, cache
                await asyncio.to_thread(
                    load, url, core=args.loadgen_core, seconds=1, connections=args.connections
                )
            for round_ in range(args.rounds):
                for target in selected:
                    _, url = deployments[target.name]
                    measured = await asyncio.to_thread(
                        load,
                        url,
                        core=args.loadgen_core,
                        seconds=args.seconds,
                        connections=args.connections,
                    )
                    measured["loadavg"] = os.getloadavg()[0]
                    runs = results["targets"].setdefault(
                        target.name, {"label": target.label, "runs": []}
                    )["runs"]
                    runs.append(measured)
                    log(
                        f"  round {round_ + 1} {target.name:13} {measured['rps']:8.0f} req/s  "
                        f"p50 {measured['p50_ms']:6.2f} ms  p99 {measured['p99_ms']:6.2f} ms  "
                        f"errors {measured['errors']}"
                    )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    for entry in results["targets"].values():
        runs = entry["runs"]
        entry["rps_median"] = statistics.median(r["rps"] for r in runs)
        entry["p50_ms_median"] = statistics.median(r["p50_ms"] for r in runs)
        entry["p99_ms_median"] = statistics.median(r["p99_ms"] for r in runs)
    results["loadavg_end"] = os.getloadavg()
    return results


def render(results: dict[str, Any]) -> str:
    lines = [
        f"### GET /rooms/{{id}} with the read cache on and off ({results['date']})",
        "",
        f"{results['tool']}, {results['connections']} connections, {results['rounds']} rounds "
        f"of {results['seconds']} s per server (medians); server on core 0, load on core 1; "
        f"load average {results['loadavg_start'][0]:.2f} at start, "
        f"{results['loadavg_end'][0]:.2f} at the end.",
        "",
        "| server | requests/s | p50 ms | p99 ms | vs cache off |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    targets = results["targets"]
    for name, entry in targets.items():
        off = targets.get(name.removesuffix("-on") + "-off") if name.endswith("-on") else None
        ratio = f"{entry['rps_median'] / off['rps_median']:.2f}x" if off else "-"
        lines.append(
            f"| {entry['label']} | {entry['rps_median']:,.0f} | {entry['p50_ms_median']:.2f} "
            f"| {entry['p99_ms_median']:.2f} | {ratio} |"
        )
    return "\n".join(lines) + "\n"


def save(results: dict[str, Any], directory: Path) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    markdown = render(results)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for name in (f"cache-{stamp}", "cache-latest"):
        (directory / f"{name}.json").write_text(json.dumps(results, indent=2))
        (directory / f"{name}.md").write_text(markdown)
    return markdown


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds of 5 s")
    parser.add_argument("--seconds", type=float, help="length of one measurement (10; quick 5)")
    parser.add_argument("--rounds", type=int, help="rounds over the servers (3; quick 2)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--server-core", type=int, default=0)
    parser.add_argument("--loadgen-core", type=int, default=1)
    parser.add_argument(
        "--no-wrk", action="store_true", help="the asyncio load generator even with wrk"
    )
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--loadgen-url", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.seconds = args.seconds or (5.0 if args.quick else 10.0)
    args.rounds = args.rounds or (2 if args.quick else 3)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.loadgen_url:  # the load generator's own process
        print(
            json.dumps(asyncio.run(stream_load(args.loadgen_url, args.seconds, args.connections)))
        )
        return
    results = asyncio.run(run(args))
    print(save(results, args.results))


if __name__ == "__main__":
    main()
