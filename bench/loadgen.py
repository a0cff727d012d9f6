"""The load generator, run in its own process: many WebSocket clients in rooms of 10.

Driven by the orchestrator (``bench/fanout.py``) with one JSON command per line on
stdin and one JSON answer per line on stdout (logs go to stderr):

- ``{"cmd": "connect", "plan": <file>, "compression": true, "concurrency": 100}``
  opens the sockets listed in the plan file, ``{"rooms": [[url, ...], ...]}``; the
  first socket of each room is its sender. ``"append": true`` keeps those already open.
- ``{"cmd": "settle", "quiet": 0.5, "limit": 15}`` waits until no frame has arrived
  for ``quiet`` seconds (the previous step's backlog is gone).
- ``{"cmd": "step", "rate": <messages/s>, "seconds": 5, "drain": 3, "size": 100}``
  sends at that total rate, spread round-robin over the rooms' senders, then waits up
  to ``drain`` seconds for the stragglers and answers with the step's statistics.
- ``{"cmd": "close"}`` closes every socket; ``{"cmd": "quit"}`` ends the process.

Each client is a bare ``asyncio.Protocol`` that parses frames by hand
(``bench/wsclient.py``): the handshake and permessage-deflate offer of a browser, no
task, future or object per received frame, so one core of load generator keeps up with
a server that delivers tens of thousands of frames per second (websockets' sans-I/O
protocol, used before, was the ceiling at about 20,000/s).

Standalone, against the baseline server (no tokens needed)::

    python -m bench.loadgen --base ws://127.0.0.1:8001 --connections 1000 --rate 2000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import random
import resource
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.wsclient import HandshakeError, WsClient

# Every content this generator sends starts with ``b<step>:<seq>:<send time>:``; finding
# this prefix is all the parsing a received frame needs (cheaper than json.loads), and
# frames of other types (presence, user_joined) simply do not contain it. ``seq`` rises
# with every message sent, and a room has one sender, so a socket that sees a ``seq``
# not above the last one it saw got a duplicate (or a reordered message).
MARK = b'"content":"b'
ROOM_SIZE_DEFAULT = 10
_TEXT = (
    "the quick brown fox jumps over a lazy dog meeting at noon see you soon "
    "sounds good thanks for the link can you share your screen I will be late "
    "lunch today the build is green again ship it tomorrow morning works for me"
)
_WORDS = _TEXT.split()


def _pads(size: int, count: int = 64) -> list[str]:
    """Chat-like filler text: deflate compresses it about as much as real messages."""
    rng = random.Random(size)
    pads = []
    for _ in range(count):
        words: list[str] = []
        while sum(len(w) + 1 for w in words) < size:
            words.append(rng.choice(_WORDS))
        pads.append(" ".join(words)[:size])
    return pads


def _percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list (inf when empty)."""
    if not ordered:
        return math.inf
    rank = max(0, math.ceil(fraction * len(ordered)) - 1)
    return ordered[rank]


@dataclass
class StepCounters:
    step: int = 0
    latencies: list[float] = field(default_factory=list)
    stale: int = 0
    frames: int = 0
    last_rx: float = 0.0
    out_of_order: int = 0
    # Known once sending is over; ``complete`` is set when that many have arrived.
    expected: int = 0
    complete: asyncio.Event = field(default_factory=asyncio.Event)


class LoadGen:
    """All the clients of one process, grouped in rooms; the first of a room sends."""

    def __init__(self) -> None:
        self.rooms: list[list[WsClient]] = []
        self.counters = StepCounters()
        self.unexpected_closes: Counter[str] = Counter()
        self._pads: list[str] = _pads(100)
        self._seq = 0  # messages sent so far, by every sender

    # -- callbacks from the clients ---------------------------------------------------
    def on_text(self, client: WsClient, data: bytes) -> None:
        now = time.monotonic()
        counters = self.counters
        counters.frames += 1
        counters.last_rx = now
        start = data.find(MARK)
        if start < 0:
            return  # presence, user_joined and the like
        start += len(MARK)
        colon = data.index(b":", start)
        if int(data[start:colon]) != counters.step:
            counters.stale += 1  # a straggler of an earlier step
            return
        second = data.index(b":", colon + 1)
        seq = int(data[colon + 1 : second])
        if seq <= client.last_seq:
            counters.out_of_order += 1  # not counted as a delivery
            return
        client.last_seq = seq
        end = data.index(b":", second + 1)
        counters.latencies.append(now - float(data[second + 1 : end]))
        if counters.expected and len(counters.latencies) >= counters.expected:
            counters.complete.set()

    def on_lost(self, client: WsClient) -> None:
        if not client.closing:
            self.unexpected_closes[str(client.close_code)] += 1

    # -- commands ------------------------------------------------------------------------
    async def connect(
        self,
        plan: Path,
        *,
        compression: bool,
        concurrency: int,
        append: bool,
        open_s: float,
        budget_s: float,
    ) -> dict[str, Any]:
        if not append:
            await self.close()
        rooms: list[list[str]] = json.loads(await asyncio.to_thread(plan.read_text))["rooms"]
        gate = asyncio.Semaphore(concurrency)
        failures: Counter[str] = Counter()
        started = time.monotonic()

        async def open_one(url: str) -> WsClient | None:
            async with gate:
                if time.monotonic() - started > budget_s:
                    failures["skipped: out of time"] += 1
                    return None
                try:
                    return await asyncio.wait_for(self._open(url, compression), open_s)
                except Exception as exc:
                    failures[_describe(exc)] += 1
                    return None

        opened = await asyncio.gather(*(open_one(url) for room in rooms for url in room))
        seconds = time.monotonic() - started
        index = 0
        for room in rooms:
            clients = [c for c in opened[index : index + len(room)] if c is not None]
            index += len(room)
            self.rooms.append(clients)
        count = sum(c is not None for c in opened)
        skipped = failures.pop("skipped: out of time", 0)
        return {
            "opened": count,
            "skipped": skipped,
            "failed": sum(failures.values()),
            "failures": dict(failures.most_common(5)),
            "seconds": round(seconds, 3),
            "per_second": round(count / seconds, 1) if seconds > 0 else None,
            "total_open": sum(len(room) for room in self.rooms),
        }

    async def settle(self, *, quiet: float, limit: float) -> dict[str, Any]:
        """Wait for the previous step's backlog to be delivered (bounded)."""
        started = time.monotonic()
        seen, since = self.counters.frames, time.monotonic()
        while time.monotonic() - started < limit:
            await asyncio.sleep(0.05)
            if self.counters.frames != seen:
                seen, since = self.counters.frames, time.monotonic()
            elif time.monotonic() - since >= quiet:
                break
        return {"seconds": round(time.monotonic() - started, 3)}

    async def step(self, *, rate: float, seconds: float, drain: float, size: int) -> dict[str, Any]:
        if len(self._pads[0]) != size:
            self._pads = _pads(size)
        self.counters = StepCounters(step=self.counters.step + 1)
        closes_before = sum(self.unexpected_closes.values())
        cpu_before, started = time.process_time(), time.monotonic()
        sent, expected = await self._pace(rate, seconds)
        send_seconds = time.monotonic() - started
        self.counters.expected = expected
        if len(self.counters.latencies) >= expected:
            self.counters.complete.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.counters.complete.wait(), drain)
        wall = time.monotonic() - started
        cpu = time.process_time() - cpu_before
        return self._step_report(
            rate=rate,
            sent=sent,
            expected=expected,
            started=started,
            send_seconds=send_seconds,
            cpu_fraction=cpu / wall,
            new_closes=sum(self.unexpected_closes.values()) - closes_before,
        )

    async def close(self) -> dict[str, Any]:
        clients = [client for room in self.rooms for client in room]
        for client in clients:
            client.close()
        pending = [client.lost for client in clients if not client.lost.done()]
        if pending:
            await asyncio.wait(pending, timeout=10)
        self.rooms = []
        return {"closed": len(clients)}

    # -- internals ----------------------------------------------------------------------
    async def _open(self, url: str, compression: bool) -> WsClient:
        client = WsClient(url, compression=compression, on_text=self.on_text, on_lost=self.on_lost)
        loop = asyncio.get_running_loop()
        await loop.create_connection(lambda: client, client.host, client.port)
        try:
            await client.opened
        except BaseException:
            client.close()
            raise
        return client

    async def _pace(self, rate: float, seconds: float) -> tuple[int, int]:
        """Open-loop sending at ``rate`` messages/s; returns (sent, expected deliveries)."""
        senders = [(room[0], sum(c.alive for c in room)) for room in self.rooms if room]
        senders = [(client, live) for client, live in senders if client.alive]
        total = int(rate * seconds)
        if not senders or total <= 0:
            return 0, 0
        step, pads, seq = self.counters.step, self._pads, self._seq
        started = time.monotonic()
        sent = expected = turn = 0
        # A hard stop in time too: a stalled event loop must not stretch the step.
        while sent < total and time.monotonic() - started < seconds + 2:
            due = min(total, int((time.monotonic() - started) * rate) + 1)
            while sent < due:
                client, live = senders[turn % len(senders)]
                turn += 1
                pad = pads[turn % len(pads)]
                seq += 1
                now = time.monotonic()
                if client.send_text(f'{{"content":"b{step}:{seq}:{now:.6f}:{pad}"}}'):
                    expected += live
                sent += 1
            # At least a millisecond: shorter sleeps spin the event loop (uvloop's timers
            # have 1 ms resolution) and would make the generator look busier than it is.
            await asyncio.sleep(max(0.001, started + sent / rate - time.monotonic()))
        self._seq = seq
        return sent, expected

    def _step_report(
        self,
        *,
        rate: float,
        sent: int,
        expected: int,
        started: float,
        send_seconds: float,
        cpu_fraction: float,
        new_closes: int,
    ) -> dict[str, Any]:
        counters = self.counters
        delivered = len(counters.latencies)
        lost = max(0, expected - delivered)
        # A delivery that never came counts as infinitely late, so loss shows in p99.
        ordered = sorted(counters.latencies) + [math.inf] * lost
        span = (counters.last_rx - started) if delivered else send_seconds
        return {
            "rate": rate,
            "sent": sent,
            "expected": expected,
            "delivered": delivered,
            "lost": lost,
            "delivered_per_s": round(delivered / max(span, send_seconds, 1e-9), 1),
            "p50_ms": _ms(_percentile(ordered, 0.50)),
            "p99_ms": _ms(_percentile(ordered, 0.99)),
            "max_ms": _ms(ordered[-1] if ordered else math.inf),
            "send_seconds": round(send_seconds, 3),
            "stale": counters.stale,
            "out_of_order": counters.out_of_order,
            "unexpected_closes": new_closes,
            "close_codes": dict(self.unexpected_closes),
            "loadgen_cpu": round(cpu_fraction, 3),
        }


def _ms(seconds: float) -> float | None:
    """Milliseconds for JSON (None stands for 'never arrived')."""
    return None if math.isinf(seconds) else round(seconds * 1000, 2)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, HandshakeError):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return "timeout"
    return type(exc).__name__ + (f": {exc}" if str(exc) else "")


def raise_file_limit() -> int:
    """Raise the soft open-files limit to the hard one: each socket is a descriptor."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


async def _dispatch(gen: LoadGen, command: dict[str, Any]) -> dict[str, Any]:
    name = command.get("cmd")
    if name == "connect":
        return await gen.connect(
            Path(command["plan"]),
            compression=bool(command.get("compression", True)),
            concurrency=int(command.get("concurrency", 100)),
            append=bool(command.get("append", False)),
            open_s=float(command.get("open_s", 30)),
            budget_s=float(command.get("budget_s", 600)),
        )
    if name == "settle":
        return await gen.settle(
            quiet=float(command.get("quiet", 0.5)), limit=float(command.get("limit", 15))
        )
    if name == "step":
        return await gen.step(
            rate=float(command["rate"]),
            seconds=float(command.get("seconds", 5)),
            drain=float(command.get("drain", 3)),
            size=int(command.get("size", 100)),
        )
    if name == "close":
        return await gen.close()
    if name == "info":
        return {"nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0]}
    raise ValueError(f"unknown command {name!r}")


async def serve_stdio() -> None:
    """Answer the orchestrator's commands until ``quit`` or end of input."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    gen = LoadGen()
    while line := await reader.readline():
        command = json.loads(line)
        if command.get("cmd") == "quit":
            break
        try:
            answer = {"ok": True, **await _dispatch(gen, command)}
        except Exception as exc:
            answer = {"ok": False, "error": _describe(exc)}
        print(json.dumps(answer), flush=True)
    await gen.close()


async def standalone(args: argparse.Namespace) -> None:
    """One ramp against a baseline-shaped server (no tokens), printed as JSON lines."""
    rooms = [
        [f"{args.base}/ws/room{r}/user{s}" for s in range(ROOM_SIZE_DEFAULT)]
        for r in range(args.connections // ROOM_SIZE_DEFAULT)
    ]
    plan = Path(args.plan_file)
    await asyncio.to_thread(plan.write_text, json.dumps({"rooms": rooms}))
    gen = LoadGen()
    opened = await gen.connect(
        plan,
        compression=not args.no_compression,
        concurrency=100,
        append=False,
        open_s=30,
        budget_s=600,
    )
    print(json.dumps(opened))
    for index in range(args.steps):
        await gen.settle(quiet=0.5, limit=10)
        rate = args.rate * args.factor**index / ROOM_SIZE_DEFAULT
        print(json.dumps(await gen.step(rate=rate, seconds=args.seconds, drain=3, size=100)))
    await gen.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stdio", action="store_true", help="take commands on stdin")
    parser.add_argument("--base", default="ws://127.0.0.1:8001")
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=2000, help="deliveries/s of step 1")
    parser.add_argument("--factor", type=float, default=1.5)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--no-compression", action="store_true")
    parser.add_argument("--plan-file", default="/tmp/bench-loadgen-plan.json")
    args = parser.parse_args()
    raise_file_limit()
    try:
        import uvloop  # the servers under test run on uvloop too
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it
        runner = asyncio.run
    else:
        runner = uvloop.run
    runner(serve_stdio() if args.stdio else standalone(args))


if __name__ == "__main__":
    main()
