"""Live streaming benchmark: WHIP ingest (aiortc) to live HLS (PyAV), measured.

    uv run python -m bench.live             # about 5 minutes
    uv run python -m bench.live --quick     # about 2 minutes
    make bench-live

Runs itself inside a loopback-only network namespace (``unshare --net``, as the tests
do), with the server (SQLite, in-process broker) pinned to core 0 and the aiortc
publishers (this process) to core 1. It measures:

1. start-up: from the WHIP ``POST`` to the answer, to ICE/DTLS connected, and to the
   first playable segment (the live playlist lists one and it downloads);
2. glass-to-servable latency: every publisher frame carries its frame number as a
   barcode (``tests/live/publisher.py``); each segment is decoded and the capture time
   of its first and last frame compared with when the playlist first listed it
   (polled every 50 ms, so figures are up to 50 ms late);
3. CPU: N publishers at once (N = 1, 2, ...), each 640x480 at 30 fps VP8 + Opus; the
   server's CPU seconds per wall second, per stream, and whether every stream kept
   up (media listed vs wall time; the newest segment's latency at the end).

Results: ``bench/results/live-<time>.json`` and ``.md`` (and ``live-latest.*``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import av
import httpx

from bench import procstat

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
LOOPBACK_ICE = REPO / "tests" / "live" / "loopback_ice"
INSIDE = "VIDEOCHAT_BENCH_LIVE_NETNS"
NETNS = ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]
SERVER_CORE, PUBLISHER_CORE = 0, 1
FPS = 30
SEGMENT_SECONDS = 2.0


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _entries(text: str) -> list[tuple[int, float, str]]:
    """(media sequence number, duration, uri) of each listed segment."""
    sequence, duration, out = 0, 0.0, []
    for line in text.splitlines():
        if line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            sequence = int(line.split(":", 1)[1])
        elif line.startswith("#EXTINF:"):
            duration = float(line[8:].split(",", 1)[0])
        elif line and not line.startswith("#"):
            out.append((sequence, duration, line))
            sequence += 1
    return out


def _pin_tree(pid: int, core: int) -> None:
    """Every thread of a process on one core (threads it starts later inherit it)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            os.sched_setaffinity(int(task.name), {core})


def _stats(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "min": round(ordered[0], 3),
        "median": round(statistics.median(ordered), 3),
        "p90": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))], 3),
        "max": round(ordered[-1], 3),
    }


class Stream:
    """One room, one live stream, one aiortc publisher, and what was seen of it."""

    def __init__(self, http: httpx.AsyncClient, index: int) -> None:
        from tests.live.publisher import Publisher

        self.http = http
        self.index = index
        self.publisher = Publisher()
        self.publisher.video.fps = FPS
        self.info: dict[str, Any] = {}
        self.location = ""
        self.timings: dict[str, float] = {}
        self.listed: dict[int, tuple[str, float, float]] = {}  # seq -> uri, duration, when

    async def create(self) -> None:
        user = (await self.http.post("/users", json={"username": f"pub{self.index}"})).json()
        token = user["access_token"]
        room = await self.http.post(
            "/rooms", json={"name": f"Live {self.index}"}, headers=_auth(token)
        )
        room.raise_for_status()
        created = await self.http.post(
            f"/rooms/{room.json()['id']}/live-stream",
            json={"title": f"bench {self.index}"},
            headers=_auth(token),
        )
        created.raise_for_status()
        self.info = created.json()

    async def publish(self) -> None:
        posted = time.monotonic()
        answer = await self.publisher.publish(
            self.http, self.info["whip_url"], self.info["stream_key"]
        )
        answered = time.monotonic()
        if answer.status_code != 201:
            raise RuntimeError(f"WHIP POST: {answer.status_code} {answer.text}")
        self.location = answer.headers["location"]
        await asyncio.wait_for(self.publisher.connected.wait(), 20)
        connected = time.monotonic()
        while not await self.poll():
            if time.monotonic() - posted > 30:
                raise RuntimeError("no segment 30 s after the WHIP POST")
            await asyncio.sleep(0.05)
        first = await self.http.get(self.base + "/" + self.listed[min(self.listed)][0])
        if first.status_code != 200:
            raise RuntimeError(f"first segment: {first.status_code}")
        self.timings = {
            "post_to_answer": round(answered - posted, 3),
            "post_to_connected": round(connected - posted, 3),
            "post_to_first_playable_segment": round(time.monotonic() - posted, 3),
        }

    @property
    def base(self) -> str:
        return str(self.info["pull_url"]).rsplit("/", 1)[0]

    async def poll(self) -> bool:
        """Read the live playlist once; note when each segment was first listed."""
        response = await self.http.get(self.info["pull_url"])
        now = time.time()
        if response.status_code != 200:
            return False
        for sequence, duration, uri in _entries(response.text):
            self.listed.setdefault(sequence, (uri, duration, now))
        return bool(self.listed)

    def media_seconds(self) -> float:
        return sum(duration for _, duration, _ in self.listed.values())

    async def latency(self, sequence: int) -> dict[str, float]:
        """Capture -> first listed, for the first and the last frame of one segment."""
        from tests.live.publisher import read_frame_number

        uri, duration, listed_at = self.listed[sequence]
        data = (await self.http.get(f"{self.base}/{uri}")).content
        numbers = await asyncio.to_thread(_frame_numbers, data, read_frame_number)
        captured = self.publisher.video.captured
        return {
            "sequence": sequence,
            "duration": duration,
            "frames": len(numbers),
            "first_frame": round(listed_at - captured[numbers[0]], 3),
            "last_frame": round(listed_at - captured[numbers[-1]], 3),
        }

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self.http.delete(self.location, headers=_auth(self.info["stream_key"]))
        await self.publisher.close()


def _frame_numbers(data: bytes, read: Any) -> list[int]:
    container: Any = av.open(io.BytesIO(data), format="mpegts")
    with container:
        return [read(frame) for frame in container.decode(video=0)]


async def _watch(streams: list[Stream], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await asyncio.gather(*(stream.poll() for stream in streams))
        await asyncio.sleep(0.05)


async def _wait_ended(http: httpx.AsyncClient, streams: list[Stream]) -> None:
    """Until every stream's recording is closed (the server is idle again)."""
    deadline = time.monotonic() + 60
    for stream in streams:
        while time.monotonic() < deadline:
            playlist = await http.get(stream.info["pull_url"])
            if "#EXT-X-ENDLIST" in playlist.text:
                break
            await asyncio.sleep(0.2)


async def startup_and_latency(http: httpx.AsyncClient, trials: int, watch: float) -> dict[str, Any]:
    """One stream at a time: start-up times, then per-segment latency while it runs."""
    runs, latencies = [], []
    for trial in range(trials):
        stream = Stream(http, 1000 + trial)
        await stream.create()
        await stream.publish()
        await _watch([stream], watch)
        # The first listed segment may have been listed before the first poll saw it
        # (it is the start-up measurement); every later one was polled as it appeared.
        for sequence in sorted(stream.listed)[1:-1]:
            latencies.append(await stream.latency(sequence))
        await stream.stop()
        await _wait_ended(http, [stream])
        runs.append(stream.timings)
    return {
        "runs": runs,
        "post_to_answer": _stats([r["post_to_answer"] for r in runs]),
        "post_to_connected": _stats([r["post_to_connected"] for r in runs]),
        "post_to_first_playable_segment": _stats(
            [r["post_to_first_playable_segment"] for r in runs]
        ),
        "first_frame_to_servable": _stats([s["first_frame"] for s in latencies]),
        "last_frame_to_servable": _stats([s["last_frame"] for s in latencies]),
        "segments": latencies,
    }


async def concurrent(
    http: httpx.AsyncClient, server_pid: int, count: int, window: float
) -> dict[str, Any]:
    """``count`` streams at once: server CPU per stream, and whether all kept up."""
    streams = [Stream(http, count * 100 + index) for index in range(count)]
    for stream in streams:
        await stream.create()
    await asyncio.gather(*(stream.publish() for stream in streams))
    await _watch(streams, 3.0)  # settle: every encoder running
    media_before = [stream.media_seconds() for stream in streams]
    cores_before = procstat.CoreTimes.read()
    cpu_before, wall_before = procstat.tree_cpu([server_pid]), time.monotonic()
    own_before = time.process_time()
    frames_before = [stream.publisher.video.count for stream in streams]
    await _watch(streams, window)
    wall = time.monotonic() - wall_before
    server_cpu = procstat.tree_cpu([server_pid]) - cpu_before
    own_cpu = time.process_time() - own_before
    cores = procstat.CoreTimes.read().busy_since(cores_before)
    media = [
        stream.media_seconds() - before
        for stream, before in zip(streams, media_before, strict=True)
    ]
    sent = [
        stream.publisher.video.count - before
        for stream, before in zip(streams, frames_before, strict=True)
    ]
    newest = []
    for stream in streams:
        # The newest segment but one: the newest may have been listed between polls.
        sequences = sorted(stream.listed)
        newest.append(await stream.latency(sequences[-2]))
    await asyncio.gather(*(stream.stop() for stream in streams))
    await _wait_ended(http, streams)
    per_stream = server_cpu / wall / count
    # CPU per second of media written: fair even when a starved publisher sent less.
    per_media_second = server_cpu / sum(media) if sum(media) else None
    return {
        "streams": count,
        "window_seconds": round(wall, 2),
        "server_cpu_per_second": round(server_cpu / wall, 3),
        "server_cpu_per_stream": round(per_stream, 3),
        "server_cpu_per_media_second": round(per_media_second, 3) if per_media_second else None,
        "streams_per_core_estimate": round(1 / per_media_second, 1) if per_media_second else None,
        "publisher_fps": [round(n / wall, 1) for n in sent],
        "publisher_cpu_per_second": round(own_cpu / wall, 3),
        "core_busy": cores,
        # Media seconds listed per wall second in the window, per stream: ~1.0 when
        # the encoder keeps up (segment granularity makes it move by +-2 s / window).
        "realtime_ratio": [round(m / wall, 2) for m in media],
        "newest_segment_latency": newest,
        "startup": [stream.timings for stream in streams],
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from tests.web.harness import ServerProcess

    os.sched_setaffinity(0, {PUBLISHER_CORE})
    results: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "av": av.__version__,
            "loadavg_start": os.getloadavg(),
        },
        "setup": {
            "publisher": f"aiortc, 640x480 @ {FPS} fps VP8 + Opus, synthetic picture",
            "output": "H.264 (x264 veryfast, zerolatency) + AAC in MPEG-TS, 480p",
            "segment_seconds": SEGMENT_SECONDS,
            "server_core": SERVER_CORE,
            "publisher_core": PUBLISHER_CORE,
        },
    }
    with tempfile.TemporaryDirectory(prefix="videochat-bench-live-") as tmp:
        server = ServerProcess(
            Path(tmp),
            {
                "PYTHONPATH": str(LOOPBACK_ICE),
                "VIDEOCHAT_LIVE__MAX_STREAMS": "50",
                "VIDEOCHAT_LIVE__SEGMENT_SECONDS": str(SEGMENT_SECONDS),
                "VIDEOCHAT_LIVE__PUBLISHER_TIMEOUT_SECONDS": "30",
            },
        )
        server.start()
        try:
            assert server._process is not None
            pid = server._process.pid
            _pin_tree(pid, SERVER_CORE)
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
                print("start-up and latency...", file=sys.stderr, flush=True)
                results["startup"] = await startup_and_latency(http, args.trials, args.watch)
                results["concurrency"] = []
                for count in range(1, args.max_streams + 1):
                    print(f"{count} stream(s) at once...", file=sys.stderr, flush=True)
                    step = await concurrent(http, pid, count, args.window)
                    results["concurrency"].append(step)
                    print(json.dumps({k: step[k] for k in (
                        "streams", "server_cpu_per_stream", "realtime_ratio",
                        "publisher_cpu_per_second")}), file=sys.stderr, flush=True)  # fmt: skip
                    if step["server_cpu_per_second"] > 0.95:
                        results["stopped_because"] = "the server's core is full"
                        break
                    if step["publisher_cpu_per_second"] > 0.9:
                        # The publishers' own core is full: more would measure them.
                        results["stopped_because"] = "the publishers' core is saturated"
                        break
        finally:
            server.stop()
    results["loadavg_end"] = os.getloadavg()
    return results


def render(results: dict[str, Any]) -> str:
    """The results as a short markdown report."""
    start = results["startup"]

    def row(name: str, stats: dict[str, float] | None) -> str:
        if not stats:
            return f"| {name} | - | - | - | - |"
        return f"| {name} | {stats['median']} | {stats['min']} | {stats['max']} | {stats['n']} |"

    lines = [
        f"# Live streaming benchmark ({results['started']})",
        "",
        f"Setup: {results['setup']['publisher']} → {results['setup']['output']}, "
        f"{results['setup']['segment_seconds']} s segments; server on core "
        f"{results['setup']['server_core']}, publishers on core "
        f"{results['setup']['publisher_core']}; loopback-only namespace.",
        "",
        "| seconds | median | min | max | n |",
        "| --- | --- | --- | --- | --- |",
        row("WHIP POST → answer", start["post_to_answer"]),
        row("WHIP POST → connected", start["post_to_connected"]),
        row("WHIP POST → first playable segment", start["post_to_first_playable_segment"]),
        row("captured → servable (a segment's first frame)", start["first_frame_to_servable"]),
        row("captured → servable (a segment's last frame)", start["last_frame_to_servable"]),
        "",
        "| streams | server CPU (cores) | CPU s per media s | streams/core (est.) | publisher fps"
        " | realtime ratio | newest segment latency (s) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]  # fmt: skip
    for step in results["concurrency"]:
        latency = [s["first_frame"] for s in step["newest_segment_latency"]]
        lines.append(
            f"| {step['streams']} | {step['server_cpu_per_second']} | "
            f"{step['server_cpu_per_media_second']} | {step['streams_per_core_estimate']} | "
            f"{min(step['publisher_fps'])} to {max(step['publisher_fps'])} | "
            f"{min(step['realtime_ratio'])} to {max(step['realtime_ratio'])} | "
            f"{min(latency)} to {max(latency)} |"
        )
    start_load = [round(x, 1) for x in results["machine"]["loadavg_start"]]
    end_load = [round(x, 1) for x in results["loadavg_end"]]
    lines += ["", f"Load average at the start {start_load}, at the end {end_load}."]
    if results.get("stopped_because"):
        lines += ["", f"Stopped adding streams: {results['stopped_because']}."]
    return "\n".join(lines) + "\n"


def save(results: dict[str, Any]) -> str:
    RESULTS.mkdir(parents=True, exist_ok=True)
    markdown = render(results)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    for name in (f"live-{stamp}", "live-latest"):
        (RESULTS / f"{name}.json").write_text(json.dumps(results, indent=2))
        (RESULTS / f"{name}.md").write_text(markdown)
    return markdown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer trials, shorter windows")
    parser.add_argument("--max-streams", type=int, default=None)
    parser.add_argument("--trials", type=int, default=None)
    parser.add_argument("--window", type=float, default=None, help="seconds measured per step")
    parser.add_argument("--watch", type=float, default=None, help="seconds watched per trial")
    args = parser.parse_args()
    args.max_streams = args.max_streams or (3 if args.quick else 5)
    args.trials = args.trials or (2 if args.quick else 4)
    args.window = args.window or (10.0 if args.quick else 20.0)
    args.watch = args.watch or (8.0 if args.quick else 14.0)
    if os.environ.get(INSIDE) != "1":
        for tool in ("unshare", "ip", "taskset"):
            if shutil.which(tool) is None:
                sys.exit(f"bench.live needs {tool}")
        prefix = (
            NETNS if os.geteuid() == 0 else ["unshare", "--user", "--map-root-user", *NETNS[1:]]
        )
        env = {**os.environ, INSIDE: "1", "PYTHONPATH": str(REPO)}
        command = [*prefix, sys.executable, "-m", "bench.live", *sys.argv[1:]]
        sys.exit(subprocess.call(command, cwd=REPO, env=env))
    # Inside the namespace: aioice may offer 127.0.0.1 (the publishers need it too).
    import tests.live.loopback_ice.sitecustomize  # noqa: F401

    results = asyncio.run(run(args))
    print(save(results))


if __name__ == "__main__":
    main()
