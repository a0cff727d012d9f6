"""Fan-out benchmark: videochat against a bare FastAPI broadcast server, same run.

    uv run python -m bench.fanout            # full run, about 15 minutes
    uv run python -m bench.fanout --quick    # smaller and shorter, 3-5 minutes

For each target (the baseline, videochat on SQLite, on PostgreSQL, two instances
behind Redis; ``--targets obs-off,obs-on`` for the cost of metrics and logging,
``--targets sqlite,limits`` for the cost of rate limiting) one
fresh deployment is started, pinned to core 0, and the load generator (its own
process, ``bench/loadgen.py``) to core 1. First the fresh server's memory per idle
socket, with as many sockets as the file limit allows (bounded in time); then, on each
wire (``plain``: no permessage-deflate; ``deflate``: offered as browsers do), N sockets
in rooms of 10, one sender per room: the server's CPU per delivery at fixed rates (the
primary figure: robust on a shared machine), the latency at a moderate rate, and a send
rate that rises step by step until p99 passes 100 ms. Last (``--rounds``, not with
``--quick``) every target is up at once and measured in turn at one fixed rate, round
after round (``bench/rounds.py``): the ratios to the baseline within a round, robust to
the machine's speed drifting over the run. Results:
``bench/results/fanout-<time>.{json,md}`` (and ``latest.*``); the markdown is printed too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import procstat, profile, report, rounds
from bench.deploy import REPO, ROOM_SIZE, TARGETS, Deployment, Options, Target
from bench.driver import LoadGen, good, measure

RESULTS = REPO / "bench" / "results"
WARM_CONNECTIONS = 100  # opened before the idle-memory baseline is read
IDLE_PROFILE_SECONDS = 20.0  # py-spy's recording while the idle sockets open (--profile)


@dataclass(frozen=True)
class Plan:
    """How much to measure (``--quick`` shrinks it)."""

    targets: tuple[str, ...]
    connections: int
    idle_connections: int
    step_seconds: float
    start: float  # deliveries/s of the first step
    factor: float
    max_steps: int
    refine: int
    moderate: float
    size: int
    open_budget: float  # seconds allowed for opening the idle sockets
    idle_targets: tuple[str, ...]

    @property
    def rooms(self) -> int:
        return max(1, self.connections // ROOM_SIZE)

    profile: bool
    results: Path
    idle_only: bool = False  # just the idle-socket test: opening rate and memory
    wires: tuple[str, ...] = ("plain", "deflate")
    fixed_rates: tuple[float, ...] = (2000, 5000, 10000)
    sweep: bool = True
    profile_rate: float | None = None  # profile at this rate rather than at the knee


def build_plan(args: argparse.Namespace) -> Plan:
    quick = args.quick
    fd_budget = _file_limit() - 300  # the server's own files, the loadgen's pipes
    idle = args.idle_connections or (500 if quick else fd_budget)
    return Plan(
        targets=tuple(args.targets.split(",")),
        connections=args.connections or (300 if quick else 1000),
        idle_connections=min(idle, fd_budget) // ROOM_SIZE * ROOM_SIZE,
        step_seconds=args.step_seconds or (2.0 if quick else 5.0),
        start=args.start,
        factor=args.factor or (2.0 if quick else 1.4),
        max_steps=args.max_steps,
        refine=args.refine if args.refine is not None else (0 if quick else 2),
        moderate=args.moderate,
        size=args.size,
        open_budget=args.open_budget or (30.0 if quick else 120.0),
        idle_targets=tuple(args.idle_targets.split(",")),
        profile=args.profile,
        results=args.results,
        idle_only=args.idle_only,
        wires=tuple(args.wires.split(",")),
        fixed_rates=tuple(float(r) for r in args.fixed_rates.split(",") if r),
        sweep=not args.no_sweep,
        profile_rate=args.profile_rate,
    )


def _file_limit() -> int:
    """Raise our soft limit to the hard one; servers and loadgen inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- one target -------------------------------------------------------------------------
async def bench_target(
    target: Target, plan: Plan, options: Options, loadgen_core: int, memory: bool
) -> dict[str, Any]:
    """One deployment: idle memory first (on the fresh server), then the sweep."""
    result: dict[str, Any] = {"label": target.label, "loadavg_before": os.getloadavg()[0]}
    memory = memory and target.name in plan.idle_targets
    phases = Phases(result)
    async with Deployment(target, options) as deployment:
        phases.done("start")
        # One provisioning serves both tests: the sweep uses the first rooms of it.
        sweep_count = 0 if plan.idle_only else plan.connections
        count = max(sweep_count, plan.idle_connections if memory else 0)
        all_file = await deployment.plan(
            count, options.workdir / "all.json", budget_s=plan.open_budget
        )
        rooms = await _rooms(all_file)
        phases.done("provision")
        if not plan.idle_only:
            # Before any load: the floor under the moderate load's latency.
            result["commit_floor"] = floor = await deployment.commit_floor()
            if floor is not None:
                log(f"  lone commit p50 {floor['p50_ms']} ms, p99 {floor['p99_ms']} ms")
        sweep_plan = await _write(options.workdir / "sweep.json", rooms[: plan.rooms])
        async with LoadGen(loadgen_core, options.workdir / "loadgen.log") as loadgen:
            if memory:
                result["idle"] = await idle_memory(loadgen, deployment, rooms, plan, options)
                phases.done("idle")
            if plan.idle_only:
                if memory:
                    result["reopen"] = await reopen(loadgen, deployment, plan, options)
                await loadgen.close()
                result["loadavg_after"] = os.getloadavg()[0]
                return result
            result["wires"] = {}
            for wire in plan.wires:
                result["wires"][wire] = await bench_wire(
                    wire, loadgen, deployment, plan, sweep_plan
                )
                phases.done(wire)
    result["loadavg_after"] = os.getloadavg()[0]
    return result


async def bench_wire(
    wire: str, loadgen: LoadGen, deployment: Deployment, plan: Plan, sweep_plan: Path
) -> dict[str, Any]:
    """One wire (``plain``: no permessage-deflate; ``deflate``: as browsers offer it):
    CPU per delivery at fixed rates, latency at the moderate rate, then the sweep."""
    result: dict[str, Any] = {}
    result["connect"] = await loadgen.connect(sweep_plan, compression=wire == "deflate")
    result["fixed"] = []
    for rate in plan.fixed_rates:
        step = await measure(loadgen, deployment, rate, seconds=plan.step_seconds, size=plan.size)
        log(f"  {deployment.target.name:9} {wire:7} fixed {report.step_line(step)}")
        result["fixed"].append(step)
    result["moderate"] = await measure(
        loadgen, deployment, plan.moderate, seconds=plan.step_seconds, size=plan.size
    )
    log(f"  {deployment.target.name:9} {wire:7} moderate {report.step_line(result['moderate'])}")
    if plan.sweep:
        result["sweep"] = await sweep(loadgen, deployment, plan, wire)
    if plan.profile and (plan.sweep or plan.profile_rate):
        result["profile"] = await profiled_step(
            loadgen, deployment, plan, result.get("sweep", []), wire
        )
    await loadgen.close()
    return result


class Phases:
    """Wall time of each phase, kept in the results and logged as it goes."""

    def __init__(self, result: dict[str, Any]) -> None:
        self.times: dict[str, float] = {}
        result["phase_seconds"] = self.times
        self._last = time.monotonic()

    def done(self, name: str) -> None:
        now = time.monotonic()
        self.times[name] = round(now - self._last, 1)
        self._last = now
        log(f"  {name}: {self.times[name]} s")


async def _rooms(plan_file: Path) -> list[list[str]]:
    rooms: list[list[str]] = json.loads(await asyncio.to_thread(plan_file.read_text))["rooms"]
    return rooms


async def _write(path: Path, rooms: list[list[str]]) -> Path:
    await asyncio.to_thread(path.write_text, json.dumps({"rooms": rooms}))
    return path


async def sweep(
    loadgen: LoadGen, deployment: Deployment, plan: Plan, wire: str
) -> list[dict[str, Any]]:
    """Raise the rate until p99 > 100 ms, then bisect towards p99 = 50 ms."""
    steps: list[dict[str, Any]] = []

    async def step(rate: float) -> dict[str, Any]:
        result = await measure(loadgen, deployment, rate, seconds=plan.step_seconds, size=plan.size)
        steps.append(result)
        log(f"  {deployment.target.name:9} {wire:7} {report.step_line(result)}")
        return result

    rate = plan.start
    for _ in range(plan.max_steps):
        # Duplicates are a correctness bug to report, not a sign of overload: go on. A
        # failed step is tried once more: on a shared machine one scheduling hiccup of
        # another process can push a 5 s step's p99 past 100 ms.
        if not good(await step(rate), 100) and not good(await step(rate), 100):
            break
        rate *= plan.factor
    for _ in range(plan.refine):
        rate = refine_rate(steps)
        if rate is None:
            break
        await step(rate)
    return steps


def refine_rate(steps: list[dict[str, Any]]) -> float | None:
    """The next rate of the sweep's bisection towards p99 = 50 ms: halfway (geometrically)
    between the best good step and the nearest failed one above it; None once those two
    are within 10% of each other, or when either is missing.

    (Bisecting with the nearest failed step that was more than 10% away instead tried a
    rate already measured again, as often as ``--refine`` allowed.)
    """
    below = max((s["target_per_s"] for s in steps if good(s, 50)), default=None)
    if below is None:
        return None
    above = [s["target_per_s"] for s in steps if s["target_per_s"] > below and not good(s, 50)]
    if not above or min(above) <= below * 1.1:
        return None
    return math.sqrt(below * min(above))


async def profiled_step(
    loadgen: LoadGen, deployment: Deployment, plan: Plan, steps: list[dict[str, Any]], wire: str
) -> dict[str, Any]:
    """Where the server's CPU goes at its knee (or at the first step if none is good)."""
    best = report.knee(steps, 50)
    if plan.profile_rate:
        rate = plan.profile_rate
    else:
        rate = best["target_per_s"] if best else min(s["target_per_s"] for s in steps)
    seconds = max(plan.step_seconds, 6.0)
    output = plan.results / f"profile-{deployment.target.name}-{wire}.txt"
    recorder = asyncio.create_task(profile.record(deployment.pids[0], seconds + 1, output))
    step = await measure(loadgen, deployment, rate, seconds=seconds, size=plan.size)
    error = await recorder
    summary = profile.summarise(output) if error is None else {"error": error}
    log(f"  profile at {rate:,.0f}/s: {summary.get('self', summary)}")
    return {"rate": rate, "file": str(output), "step": step, **summary}


async def idle_memory(
    loadgen: LoadGen,
    deployment: Deployment,
    rooms: list[list[str]],
    plan: Plan,
    options: Options,
) -> dict[str, Any]:
    """RSS growth per idle socket on the fresh server, and how long opening them took."""
    warm_rooms = WARM_CONNECTIONS // ROOM_SIZE
    warm = await _write(options.workdir / "idle-warm.json", rooms[:warm_rooms])
    rest_rooms = rooms[warm_rooms : plan.idle_connections // ROOM_SIZE]
    rest = await _write(options.workdir / "idle-rest.json", rest_rooms)
    # Warm up first so code paths, caches and pools are not counted per socket.
    await loadgen.connect(warm, compression=True)
    await loadgen.settle(quiet=1.0)
    before = procstat.tree_rss(deployment.pids)
    cpu_before = procstat.tree_cpu(deployment.pids)
    recorder = None
    if plan.profile and plan.idle_only:
        # Where a handshake's CPU goes: py-spy leaves idle samples out, so recording a
        # little longer than the opening takes costs nothing but wall time.
        output = plan.results / f"profile-idle-{deployment.target.name}.txt"
        seconds = min(plan.open_budget, IDLE_PROFILE_SECONDS)
        recorder = asyncio.create_task(
            profile.record(deployment.pids[0], seconds, output, gil=True)
        )
    opened = await loadgen.connect(rest, compression=True, append=True, budget_s=plan.open_budget)
    # Server CPU per handshake holds up better than the rate on a busy shared machine.
    open_cpu = procstat.tree_cpu(deployment.pids) - cpu_before
    # Joins broadcast presence to the room: let that traffic finish before reading RSS.
    await loadgen.settle(quiet=2.0, limit=60)
    after = procstat.tree_rss(deployment.pids)
    await loadgen.close()
    count = max(1, opened["opened"])
    profiled: dict[str, Any] = {}
    if recorder is not None:
        error = await recorder
        profiled = {"profile": profile.summarise(output) if error is None else {"error": error}}
        log(f"  handshake profile: {profiled['profile']}")
    return {
        **profiled,
        "connections": opened["opened"] + WARM_CONNECTIONS,
        "measured": opened["opened"],
        "attempted": sum(len(room) for room in rest_rooms),
        "failed": opened["failed"],
        "failures": opened["failures"],
        "skipped": opened["skipped"],
        "open_seconds": opened["seconds"],
        "opened_per_s": opened["per_second"],
        "server_cpu_ms_per_open": round(open_cpu * 1000 / count, 2),
        "rss_before_mb": round(before / 2**20, 1),
        "rss_after_mb": round(after / 2**20, 1),
        "kb_per_connection": round((after - before) / count / 1024, 1),
    }


async def reopen(
    loadgen: LoadGen, deployment: Deployment, plan: Plan, options: Options
) -> dict[str, Any]:
    """The idle test's sockets once more: now every user is a member (a reconnect)."""
    await loadgen.settle(quiet=2.0, limit=60)  # the closes' presence traffic
    cpu_before = procstat.tree_cpu(deployment.pids)
    recorder = None
    if plan.profile:
        output = plan.results / f"profile-reopen-{deployment.target.name}.txt"
        seconds = min(plan.open_budget, IDLE_PROFILE_SECONDS)
        recorder = asyncio.create_task(
            profile.record(deployment.pids[0], seconds, output, gil=True)
        )
    opened = await loadgen.connect(
        options.workdir / "idle-rest.json", compression=True, budget_s=plan.open_budget
    )
    cpu = procstat.tree_cpu(deployment.pids) - cpu_before
    if recorder is not None:
        error = await recorder
        log(f"  reopen profile: {profile.summarise(output) if error is None else error}")
    return {
        "opened": opened["opened"],
        "failed": opened["failed"],
        "opened_per_s": opened["per_second"],
        "server_cpu_ms_per_open": round(cpu * 1000 / max(1, opened["opened"]), 2),
    }


# -- the run ----------------------------------------------------------------------------
async def run(args: argparse.Namespace) -> dict[str, Any]:
    plan = build_plan(args)
    plan.results.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="videochat-bench-"))
    options = Options(
        workdir=workdir,
        server_cores=tuple(int(c) for c in args.server_cores.split(",")),
        redis_url=args.redis_url,
    )
    started = time.time()
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": _machine(),
        "plan": {**asdict(plan), "results": str(plan.results)},
        "quick": args.quick,
        "server_cores": args.server_cores,
        "loadgen_core": args.loadgen_core,
        "targets": {},
        "failed": {},
    }
    try:
        for name in plan.targets:
            log(f"{name}: {TARGETS[name].label}")
            try:
                results["targets"][name] = await bench_target(
                    TARGETS[name], plan, options, args.loadgen_core, memory=not args.no_memory
                )
            except Exception as exc:
                # Keep going: the other targets' numbers are still worth having.
                log(f"  {name} failed: {exc!r}")
                results["failed"][name] = repr(exc)
        if args.rounds and not plan.idle_only:
            log(f"interleaved rounds at {args.rounds_rate:,.0f}/s: {', '.join(plan.targets)}")
            try:
                results["rounds"] = await rounds.interleaved(
                    plan.targets,
                    options,
                    args.loadgen_core,
                    connections=plan.connections,
                    wires=plan.wires,
                    rounds=args.rounds,
                    rate=args.rounds_rate,
                    seconds=plan.step_seconds,
                    size=plan.size,
                    log=log,
                )
            except Exception as exc:
                log(f"  rounds failed: {exc!r}")
                results["failed"]["rounds"] = repr(exc)
    finally:
        results["seconds"] = round(time.time() - started)
        results["loadavg_end"] = os.getloadavg()
        if args.keep_logs:
            log(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return results


def _machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[1],
        "loadavg_start": os.getloadavg(),
    }


def save(results: dict[str, Any], directory: Path) -> str:
    """Write JSON and markdown (timestamped and latest); return the markdown."""
    directory.mkdir(parents=True, exist_ok=True)
    markdown = report.render(results)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for name in (f"fanout-{stamp}", "latest"):
        (directory / f"{name}.json").write_text(json.dumps(results, indent=2))
        (directory / f"{name}.md").write_text(markdown)
    return markdown


# Measured when asked for (--targets): variants of the default targets.
OPTIONAL_TARGETS = {"redis1", "redis2-rooms", "obs-off", "obs-on", "limits"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a ~3 minute subset")
    parser.add_argument(
        "--targets",
        default=",".join(t for t in TARGETS if t not in OPTIONAL_TARGETS),
        help=f"comma list of {', '.join(TARGETS)}",
    )
    parser.add_argument("--connections", type=int, help="sockets for the sweep (1000; quick 300)")
    parser.add_argument(
        "--idle-connections", type=int, help="sockets for the memory test (file limit; quick 500)"
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the idle-memory test")
    parser.add_argument(
        "--idle-only",
        action="store_true",
        help="only the idle-memory test (opening rate, KB per socket; with --profile, "
        "py-spy while they open): no sweep",
    )
    parser.add_argument(
        "--idle-targets",
        default="baseline,sqlite,redis2",
        help="targets whose idle memory is measured",
    )
    parser.add_argument(
        "--open-budget", type=float, help="seconds allowed to open the idle sockets (120; quick 30)"
    )
    parser.add_argument(
        "--profile", action="store_true", help="py-spy each server at its knee (via uvx)"
    )
    parser.add_argument(
        "--wires",
        default="plain,deflate",
        help="plain (no permessage-deflate) and/or deflate (offered as browsers do)",
    )
    parser.add_argument(
        "--fixed-rates",
        default="2000,5000,10000",
        help="deliveries/s at which server CPU per delivery is measured (the primary figure)",
    )
    parser.add_argument(
        "--no-sweep", action="store_true", help="fixed rates only: no capacity sweep"
    )
    parser.add_argument(
        "--profile-rate", type=float, help="with --profile: profile at this rate (deliveries/s)"
    )
    parser.add_argument("--step-seconds", type=float, help="length of a step (5; quick 2)")
    parser.add_argument(
        "--rounds",
        type=int,
        help="then every target up at once, measured in turn at --rounds-rate this many "
        "times (3; quick 0): ratios within a round, robust to the machine's drift",
    )
    parser.add_argument("--rounds-rate", type=float, default=10000, help="deliveries/s (10000)")
    parser.add_argument("--start", type=float, default=2000, help="first step, deliveries/s")
    parser.add_argument("--factor", type=float, help="rate factor per step (1.4; quick 2)")
    parser.add_argument("--max-steps", type=int, default=14)
    parser.add_argument("--refine", type=int, help="bisection steps near p99=50ms (2; quick 0)")
    parser.add_argument(
        "--moderate", type=float, default=500, help="the fixed moderate load, deliveries/s"
    )
    parser.add_argument("--size", type=int, default=100, help="characters per message")
    parser.add_argument(
        "--server-cores", default="0", help="cores of the instances, comma list cycled (0)"
    )
    parser.add_argument("--loadgen-core", type=int, default=1)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--keep-logs", action="store_true", help="keep server/loadgen logs")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    unknown = set(args.targets.split(",")) - set(TARGETS)
    if unknown:
        raise SystemExit(f"unknown targets: {', '.join(sorted(unknown))}")
    if args.rounds is None:
        args.rounds = 0 if args.quick else 3
    results = asyncio.run(run(args))
    print(save(results, args.results))


if __name__ == "__main__":
    main()
