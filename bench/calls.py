"""Call benchmark: join-to-first-frame, and per-person uplink and CPU by call size.

    uv run python -m bench.calls                # 10 joins a mode; calls of 3, 6, 8; ~10 min
    uv run python -m bench.calls --modes sfu --sizes 3,6 --seconds 30 --sfu-runs 5

Runs in the browser tests' loopback-only network namespace (it re-executes itself
under ``unshare --net``), with their harness: the real server (SQLite, in-process
broker) and Debian's Chromium with fake camera and microphone, WebRTC over 127.0.0.1.
Two phases, each with its own server and Chromium: **mesh** (no SFU configured), then,
with Janus installed, **sfu** (a Janus started here, ``VIDEOCHAT_SFU__THRESHOLD=0``;
Janus skips loopback for ICE, so a veth pair inside the namespace carries the media,
``tests/web/janus_media.py``). In each phase:

1. **Join to first frame**, ``--runs`` (``--sfu-runs``) times: a host waits in a room;
   a new person opens the room's link, signs in as a guest and, on the pre-join screen
   (camera preview already running), clicks Join. Measured from that click to the
   first decoded video frame of the host on the joiner's page, and to the joiner's
   first frame on the host's page (both pages' clocks are the same machine's:
   ``performance.timeOrigin + performance.now()``). The joiner then closes
   the page and the host waits until it has hung up before the next run.
2. **Calls of each size** in ``--sizes``: that many pages (one context each, one
   Chromium) join one room's call; once every page sees the others' videos playing
   and ``--warmup`` seconds have passed (the senders' bandwidth estimate ramps up),
   ``--seconds`` of the call are measured: each page's uplink (``bytesSent`` of every
   ``outbound-rtp`` of all its connections: N-1 in the mesh, one publication on the
   SFU; RTP payload, headers not counted), and the CPU (utime+stime from /proc) of the
   server's process tree, Janus, and all of Chromium's processes. A size whose call
   does not come up in time is reported with what each page had; larger sizes of that
   mode are skipped.

The mesh phase first reads the idle server (nobody connected) for 10 s.

Prints markdown and writes ``bench/results/calls-<time>.{json,md}`` and
``calls-latest.*``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import procstat

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
INSIDE = "VIDEOCHAT_BENCH_IN_NETNS"
NETNS = ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]
# Small pages: the tiles' compositing is Chromium CPU that is not the call's.
PAGE_WIDTH, PAGE_HEIGHT = 640, 480

# On the joiner's page, before the click: note when Join is clicked (epoch ms).
NOTE_CLICK_JS = """
() => {
  const button = document.querySelector('[data-testid="prejoin-join"]');
  button.addEventListener('click', () => {
    window.__joinClickedAt = performance.timeOrigin + performance.now();
  }, { capture: true, once: true });
}
"""

# The first decoded frame of one remote person on this page (epoch ms), or null.
FIRST_FRAME_JS = """
(userId) => {
  const t = window.videochat.timings[userId]?.firstFrame;
  return t == null ? null : performance.timeOrigin + t;
}
"""

# Counters of all this page's connections (mesh: one per other person; SFU: the
# subscriptions and our publication): what it sent, what it decoded, and what its
# video encoders produce now (one entry per encoding: simulcast layers on the SFU).
TRAFFIC_JS = """
async () => {
  const v = window.videochat;
  const pcs = [...v.peers.values()];
  if (v.sfu?.publisher) pcs.push(v.sfu.publisher);
  const out = {
    at: performance.now(), connections: pcs.length, sending: 0,
    bytesSent: 0, videoBytesSent: 0, framesEncoded: 0, framesDecoded: 0, encodings: [],
  };
  for (const pc of pcs) {
    const stats = await pc.getStats();
    let sends = false;
    stats.forEach((s) => {
      if (s.type === 'outbound-rtp') {
        sends = true;
        out.bytesSent += s.bytesSent ?? 0;
        if (s.kind !== 'video') return;
        out.videoBytesSent += s.bytesSent ?? 0;
        out.framesEncoded += s.framesEncoded ?? 0;
        out.encodings.push({
          rid: s.rid ?? null, width: s.frameWidth ?? null, height: s.frameHeight ?? null,
          fps: s.framesPerSecond ?? null, limitation: s.qualityLimitationReason ?? null,
        });
      } else if (s.type === 'inbound-rtp' && s.kind === 'video') {
        out.framesDecoded += s.framesDecoded ?? 0;
      }
    });
    if (sends) out.sending += 1;
  }
  return out;
}
"""


def _reexec_in_namespace(argv: list[str]) -> int:
    prefix = NETNS if os.geteuid() == 0 else ["unshare", "--user", "--map-root-user", *NETNS[1:]]
    env = {**os.environ, INSIDE: "1"}
    command = [*prefix, sys.executable, "-m", "bench.calls", *argv]
    return subprocess.run(command, cwd=REPO, env=env, check=False).returncode


class CpuMeter:
    """CPU seconds of named process trees (and of the whole machine) between two reads."""

    def __init__(self, roots: dict[str, list[int]]) -> None:
        self.roots = roots
        self.started = time.monotonic()
        self.cpu = {name: procstat.own_cpu_seconds(pids) for name, pids in roots.items()}
        self.cores = procstat.CoreTimes.read()

    def read(self) -> dict[str, Any]:
        """Each tree's CPU as % of one core since the start; the cores' busy share."""
        elapsed = time.monotonic() - self.started
        out: dict[str, Any] = {"seconds": round(elapsed, 1)}
        for name, pids in self.roots.items():
            used = procstat.cpu_between(self.cpu[name], procstat.own_cpu_seconds(pids))
            out[f"{name}_percent_of_one_core"] = round(100 * used / elapsed, 1)
        out["cores_busy"] = procstat.CoreTimes.read().busy_since(self.cores)
        # Everyone else's work on the machine (this bench's own Python and Playwright
        # driver included): the cores' busy time less the trees measured here.
        ours = sum(out[f"{name}_percent_of_one_core"] for name in self.roots)
        out["rest_percent_of_one_core"] = round(100 * sum(out["cores_busy"]) - ours, 1)
        return out


def _idle(server: Any, seconds: float) -> dict[str, Any]:
    """The server with nobody connected: CPU and RSS."""
    meter = CpuMeter({"server": [server.pid]})
    rss = [procstat.tree_rss([server.pid])]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(1)
        rss.append(procstat.tree_rss([server.pid]))
    return {
        **meter.read(),
        "rss_mib_mean": round(statistics.mean(rss) / 2**20, 1),
        "rss_mib_max": round(max(rss) / 2**20, 1),
    }


def _summary(values: list[float]) -> dict[str, Any]:
    ordered = sorted(values)
    p90 = statistics.quantiles(ordered, n=10, method="inclusive")[8] if len(values) > 1 else None
    return {
        "runs": len(values),
        "median_ms": round(statistics.median(ordered)),
        "p90_ms": round(p90) if p90 is not None else round(ordered[0]),
        "min_ms": round(ordered[0]),
        "max_ms": round(ordered[-1]),
        "runs_ms": [round(v) for v in values],
    }


def _join_runs(browser: Any, server: Any, runs: int) -> dict[str, Any]:
    from tests.web import harness

    errors: list[str] = []
    host = harness.new_page(browser, server.url, errors)
    host.goto("/chat")
    host_id = harness.join_as_guest(host, "host")
    room_id = harness.create_room(host, "Bench room")
    harness.wait_for("the host's socket", lambda: host.evaluate("window.videochat.roomId"))
    joiner_sees_host: list[float] = []
    host_sees_joiner: list[float] = []
    for run in range(runs):
        joiner = harness.new_page(browser, server.url, errors)
        joiner.goto(f"/chat/rooms/{room_id}")
        joiner_id = harness.join_as_guest(joiner, f"joiner{run}", join=False)
        harness.wait_for(
            "the pre-join screen",
            lambda p=joiner: p.evaluate(harness.ROOM_VIEW_JS) == "prejoin",
        )
        joiner.evaluate(NOTE_CLICK_JS)
        joiner.get_by_test_id("prejoin-join").click()
        seen = harness.wait_for(
            "the host's picture on the joiner's page",
            lambda p=joiner: p.evaluate(FIRST_FRAME_JS, host_id),
            timeout=30,
        )
        seen_by_host = harness.wait_for(
            "the joiner's picture on the host's page",
            lambda u=joiner_id: host.evaluate(FIRST_FRAME_JS, u),
            timeout=30,
        )
        clicked = joiner.evaluate("window.__joinClickedAt")
        joiner_sees_host.append(seen - clicked)
        host_sees_joiner.append(seen_by_host - clicked)
        joiner.context.close()
        harness.wait_for(
            "the host to hang up",
            lambda u=joiner_id: not host.evaluate("(u) => window.videochat.peers.has(u)", u),
            timeout=20,
        )
        print(
            f"  run {run + 1}: joiner sees host {joiner_sees_host[-1]:.0f} ms, "
            f"host sees joiner {host_sees_joiner[-1]:.0f} ms",
            file=sys.stderr,
        )
    host.context.close()
    harness.close_pages()
    return {
        "runs": runs,
        "joiner_sees_host": _summary(joiner_sees_host),
        "host_sees_joiner": _summary(host_sees_joiner),
        "page_errors": errors,
    }


def _rates(first: dict[str, Any], last: dict[str, Any]) -> dict[str, Any]:
    """One page's uplink (kbit/s) and frame rates between two TRAFFIC_JS readings."""
    seconds = (last["at"] - first["at"]) / 1000
    return {
        "seconds": round(seconds, 1),
        "connections": last["connections"],
        "sending_connections": last["sending"],
        "uplink_kbps": round(8 * (last["bytesSent"] - first["bytesSent"]) / seconds / 1000, 1),
        "video_uplink_kbps": round(
            8 * (last["videoBytesSent"] - first["videoBytesSent"]) / seconds / 1000, 1
        ),
        "frames_encoded_per_s": round((last["framesEncoded"] - first["framesEncoded"]) / seconds),
        "frames_decoded_per_s": round((last["framesDecoded"] - first["framesDecoded"]) / seconds),
        "encodings": last["encodings"],
    }


def _call(
    browser: Any,
    server: Any,
    people: int,
    args: argparse.Namespace,
    janus_pid: int | None,
    pages: list[Any],
) -> dict[str, Any]:
    """``people`` pages (into ``pages``) in one call: until all see each other, then the
    measured stretch."""
    from tests.web import harness, janus_media

    errors: list[str] = []
    roots = {"server": [server.pid], "chromium": procstat.chromium_roots(os.getpid())}
    if janus_pid is not None:
        roots["janus"] = [janus_pid]
    joining = CpuMeter(roots)
    ids: list[str] = []
    room_id = ""
    for index in range(people):
        page = harness.new_page(browser, server.url, errors, width=PAGE_WIDTH, height=PAGE_HEIGHT)
        # A big mesh keeps both cores busy: later pages load slowly (15 s is not enough).
        page.context.set_default_timeout(60_000)
        if room_id:
            page.goto(f"/chat/rooms/{room_id}")
            ids.append(harness.join_as_guest(page, f"p{index}"))
        else:
            page.goto("/chat")
            ids.append(harness.join_as_guest(page, f"p{index}"))
            room_id = harness.create_room(page, f"{people} people")
        pages.append(page)
    for index, (page, own) in enumerate(zip(pages, ids, strict=True)):
        others = [other for other in ids if other != own]
        harness.wait_for(
            f"{len(others)} videos playing on page {index + 1} of {people}",
            lambda p=page, o=others: janus_media.playing(p, o),
            timeout=30 + 5 * people,
        )
    joined = joining.read()
    time.sleep(args.warmup)  # a measurement stretch, not a wait for a condition
    first = [page.evaluate(TRAFFIC_JS) for page in pages]
    meter = CpuMeter(roots)
    time.sleep(args.seconds)
    cpu = meter.read()
    last = [page.evaluate(TRAFFIC_JS) for page in pages]
    rss = round(procstat.tree_rss([server.pid]) / 2**20, 1)
    per_page = [_rates(a, b) for a, b in zip(first, last, strict=True)]
    uplinks = [p["uplink_kbps"] for p in per_page]
    decoded = [p["frames_decoded_per_s"] for p in per_page]
    return {
        "people": people,
        "seconds_until_all_playing": joined["seconds"],
        "cpu_while_joining": joined,
        "cpu": cpu,
        "cpu_per_person_percent": {
            name: round(cpu[f"{name}_percent_of_one_core"] / people, 1) for name in roots
        },
        "uplink_kbps_per_person": {
            "mean": round(statistics.mean(uplinks)),
            "max": round(max(uplinks)),
            "min": round(min(uplinks)),
        },
        "frames_decoded_per_s_per_person": {
            "mean": round(statistics.mean(decoded)),
            "min": min(decoded),
        },
        "sent_video": _sent_video(per_page),
        "server_rss_mib": rss,
        "pages": per_page,
        "page_errors": errors,
    }


def _sent_video(per_page: list[dict[str, Any]]) -> dict[str, Any]:
    """What the pages' video encoders produced at the end: sizes, fps, limits seen."""
    encodings = [e for p in per_page for e in p["encodings"]]
    sizes: dict[str, int] = {}
    limits: dict[str, int] = {}
    for e in encodings:
        # No frame size: an encoding that sends nothing (Chromium turns off the simulcast
        # layers a 640x480 picture is too small for).
        size = f"{e['width']}x{e['height']}" if e["width"] else "off"
        sizes[size] = sizes.get(size, 0) + 1
        limits[str(e["limitation"])] = limits.get(str(e["limitation"]), 0) + 1
    fps = [e["fps"] for e in encodings if e["fps"] is not None]
    return {
        "encodings": len(encodings),
        "sizes": sizes,
        "fps_mean": round(statistics.mean(fps), 1) if fps else None,
        "quality_limitation": limits,
    }


def _area(size: str) -> int:
    width, _, height = size.partition("x")
    return int(width) * int(height) if width.isdigit() and height.isdigit() else 0


def _calls(
    browser: Any, server: Any, args: argparse.Namespace, mode: str, janus_pid: int | None
) -> list[dict[str, Any]]:
    """A call of each size; a size that does not come up is reported, larger ones skipped."""
    from tests.web import harness

    results: list[dict[str, Any]] = []
    for people in args.sizes:
        print(f"  {mode}, {people} people", file=sys.stderr)
        pages: list[Any] = []
        try:
            result = {"mode": mode, **_call(browser, server, people, args, janus_pid, pages)}
        except Exception as error:  # a call too heavy for the machine: say so, go on
            result = {
                "mode": mode,
                "people": people,
                "error": f"{type(error).__name__}: {error}",
                "pages_at_failure": _what_pages_saw(pages),
            }
        finally:
            harness.close_pages()
        results.append(result)
        if "error" in result:
            print(f"  {mode}, {people} people failed: {result['error']}", file=sys.stderr)
            break
        print(
            f"  uplink/person {result['uplink_kbps_per_person']}, "
            f"cpu/person {result['cpu_per_person_percent']}",
            file=sys.stderr,
        )
    return results


# What a page had when a call did not come up: remote tiles with a picture, and its
# connections' states.
SAW_JS = """
() => {
  const videos = [...document.querySelectorAll('[data-testid="remote-video"]')];
  const states = {};
  for (const pc of window.videochat.peers.values()) {
    states[pc.connectionState] = (states[pc.connectionState] ?? 0) + 1;
  }
  // The call log's last lines about each person whose connection is not up.
  const stuck = {};
  for (const [userId, pc] of window.videochat.peers) {
    if (pc.connectionState === 'connected') continue;
    const mark = ` ${userId.slice(0, 8)} `;
    stuck[userId] = window.videochat.trace.filter((line) => line.includes(mark)).slice(-8);
  }
  return {
    tiles: videos.length,
    with_picture: videos.filter((v) => v.videoWidth > 0).length,
    connections: states,
    stuck,
  };
}
"""


def _what_pages_saw(pages: list[Any]) -> list[Any]:
    seen: list[Any] = []
    for page in pages:
        try:
            seen.append(page.evaluate(SAW_JS))
        except Exception as error:  # a page that is itself stuck
            seen.append(f"{type(error).__name__}: {str(error).splitlines()[0]}")
    return seen


def _server_settings(args: argparse.Namespace) -> dict[str, str]:
    # The mesh refuses more than MAX_CALL_SIZE people in a call (6 by default).
    return {"VIDEOCHAT_CALLS__MAX_CALL_SIZE": str(max(6, *args.sizes))}


@contextlib.contextmanager
def _server(workdir: Path, settings: dict[str, str]) -> Iterator[Any]:
    from tests.web import harness

    workdir.mkdir(parents=True, exist_ok=True)
    server = harness.ServerProcess(workdir, settings)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _mesh_phase(playwright: Any, tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    from tests.web import harness

    with _server(tmp / "mesh-server", _server_settings(args)) as server:
        browser = harness.launch_chromium(playwright)
        try:
            idle = _idle(server, 10)
            joins = _join_runs(browser, server, args.runs) if args.runs > 0 else None
            calls = _calls(browser, server, args, "mesh", None)
        finally:
            browser.close()
    return {"server_idle": idle, "join_to_first_frame": joins, "calls": calls}


def _sfu_phase(playwright: Any, tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The same on a Janus started here, every call on it from the first person."""
    from tests.sfu.janus_server import Janus
    from tests.web import harness, janus_media

    # The interface comes first: a Chromium that sees it appear aborts its requests.
    with janus_media.media_interface():
        janus = Janus(tmp / "janus", ice_address=janus_media.MEDIA_ADDRESS)
        janus.start()
        try:
            settings = {**_server_settings(args), **janus_media.settings(janus, threshold=0)}
            with _server(tmp / "sfu-server", settings) as server:
                browser = harness.launch_chromium(playwright)
                try:
                    joins = _join_runs(browser, server, args.sfu_runs) if args.sfu_runs else None
                    calls = _calls(browser, server, args, "sfu", janus.pid)
                finally:
                    browser.close()
        finally:
            janus.stop()
    return {"join_to_first_frame": joins, "calls": calls}


def _join_table(result: dict[str, Any]) -> list[str]:
    lines = [
        "Join to first decoded remote frame (ms), from the joiner's click on Join (pre-join):",
        "",
        "| mode | picture | runs | median | p90 | min | max |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for mode in ("mesh", "sfu"):
        join = (result.get(mode) or {}).get("join_to_first_frame")
        if not join:
            continue
        for key, label in (
            ("joiner_sees_host", "the host's, on the joiner's page"),
            ("host_sees_joiner", "the joiner's, on the host's page"),
        ):
            p = join[key]
            lines.append(
                f"| {mode} | {label} | {p['runs']} | {p['median_ms']} | {p['p90_ms']} "
                f"| {p['min_ms']} | {p['max_ms']} |"
            )
    return lines


def _calls_table(result: dict[str, Any]) -> list[str]:
    lines = [
        f"Calls: {result['seconds']} s measured per call after {result['warmup']} s of warm-up."
        " Uplink: RTP payload sent by each person (all connections), kbit/s."
        " CPU: % of one core per person (the total divided by the call's size).",
        "",
        "| mode | people | uplink/person mean | max | sending connections | sent video"
        " (size, fps, limit) | decoded fps/person | server | Janus | browsers"
        " | cores busy |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---|",
    ]
    for mode in ("mesh", "sfu"):
        for call in (result.get(mode) or {}).get("calls", []):
            if "error" in call:
                reason = call["error"].splitlines()[0][:160]
                lines.append(f"| {mode} | {call['people']} | did not come up: {reason} |")
                continue
            up, cpu, video = (
                call["uplink_kbps_per_person"],
                call["cpu_per_person_percent"],
                call["sent_video"],
            )
            sending = sorted({p["sending_connections"] for p in call["pages"]})
            limits = ", ".join(f"{k} {v}" for k, v in video["quality_limitation"].items())
            ordered = sorted(video["sizes"].items(), key=lambda kv: -_area(kv[0]))
            sizes = ", ".join(f"{k} x{v}" for k, v in ordered)
            busy = " / ".join(f"{100 * b:.0f} %" for b in call["cpu"]["cores_busy"])
            busy += f" (rest of the machine: {call['cpu']['rest_percent_of_one_core']} %)"
            janus = f"{cpu['janus']} %" if "janus" in cpu else "—"
            lines.append(
                f"| {mode} | {call['people']} | {up['mean']} | {up['max']} "
                f"| {'/'.join(map(str, sending))} | {sizes}; {video['fps_mean']} fps; {limits} "
                f"| {call['frames_decoded_per_s_per_person']['mean']} "
                f"| {cpu['server']} % | {janus} | {cpu['chromium']} % | {busy} |"
            )
    return lines


def _markdown(result: dict[str, Any]) -> str:
    lines = [
        f"Calls benchmark, {result['date']} ({result['machine']})",
        f"Load average (1 min) before {result['load_before']}, after {result['load_after']};"
        f" {result['total_seconds']} s in all.",
        "",
        *_join_table(result),
        "",
        *_calls_table(result),
    ]
    idle = (result.get("mesh") or {}).get("server_idle")
    if idle:
        lines += [
            "",
            f"Server idle, nobody connected ({idle['seconds']} s): "
            f"{idle['server_percent_of_one_core']} % of one core, RSS {idle['rss_mib_mean']} MiB.",
        ]
    return "\n".join(lines) + "\n"


def _sizes(text: str) -> list[int]:
    """``3,6,8`` → [3, 6, 8]: call sizes, each at least 2."""
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if not sizes or min(sizes) < 2:
        raise argparse.ArgumentTypeError("call sizes are numbers of at least 2")
    return sizes


def _modes(text: str) -> set[str]:
    """``mesh,sfu`` → {"mesh", "sfu"}."""
    modes = {part.strip() for part in text.split(",") if part.strip()}
    if not modes or not modes <= {"mesh", "sfu"}:
        raise argparse.ArgumentTypeError(f"modes are mesh and sfu: {text!r}")
    return modes


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="mesh joins (0: none)")
    parser.add_argument("--sfu-runs", type=int, default=10, help="joins on the SFU (0: none)")
    parser.add_argument("--sizes", type=_sizes, default=[3, 6, 8], help="call sizes, e.g. 3,6,8")
    parser.add_argument("--modes", type=_modes, default={"mesh", "sfu"}, help="mesh,sfu")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured per call")
    parser.add_argument("--warmup", type=float, default=8.0, help="before measuring a call")
    return parser.parse_args(argv)


def main() -> int:
    args = parse_args(sys.argv[1:])
    if os.environ.get(INSIDE) != "1":
        return _reexec_in_namespace(sys.argv[1:])

    from playwright.sync_api import sync_playwright
    from tests.sfu import janus_server
    from tests.web import harness

    harness.CAMERA_LIMIT = None  # the client's own capture sizes: what a call costs

    load_before = os.getloadavg()[0]
    started = time.monotonic()
    mesh = sfu = None
    with (
        tempfile.TemporaryDirectory(prefix="videochat-bench-calls-") as tmp,
        sync_playwright() as playwright,
    ):
        if "mesh" in args.modes:
            mesh = _mesh_phase(playwright, Path(tmp), args)
        if "sfu" in args.modes and janus_server.available():
            sfu = _sfu_phase(playwright, Path(tmp), args)
        elif "sfu" in args.modes:
            print("no Janus (apt-get install janus): no SFU phase", file=sys.stderr)
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{os.cpu_count()} cores, {platform.python_implementation()} "
        f"{platform.python_version()}",
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
        "total_seconds": round(time.monotonic() - started, 1),
        "seconds": args.seconds,
        "warmup": args.warmup,
        "page_size": f"{PAGE_WIDTH}x{PAGE_HEIGHT}",
        "mesh": mesh,
        "sfu": sfu,
    }
    text = _markdown(result)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    for name in (f"calls-{stamp}", "calls-latest"):
        (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2))
        (RESULTS / f"{name}.md").write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
