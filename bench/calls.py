"""Call benchmark: join-to-first-frame and the server's cost during a 3-person call.

    uv run python -m bench.calls               # 10 joins, 30 s of a 3-person call
    uv run python -m bench.calls --runs 20 --seconds 60

Runs in the browser tests' loopback-only network namespace (it re-executes itself
under ``unshare --net``), with their harness: the real server (SQLite, in-process
broker) and Debian's Chromium with fake camera and microphone, WebRTC over 127.0.0.1.

1. **Join to first frame**, ``--runs`` times: a host waits in a room; a new person
   opens the room's link, types a guest name and clicks join. Measured from that
   click to the first decoded video frame of the host on the joiner's page, and to
   the joiner's first frame on the host's page (both pages' clocks are the same
   machine's: ``performance.timeOrigin + performance.now()``). The joiner then closes
   the page and the host waits until it has hung up before the next run.
   With Janus installed, the same joins again with the call on the SFU (a Janus
   started here, ``VIDEOCHAT_SFU__THRESHOLD=0``, a fresh Chromium): the joiner
   subscribes to the host's publication through Janus (``--sfu-runs``, 0 to skip).
2. **Server during a 3-person call**: CPU (utime+stime from /proc, the server's process
   tree) and RSS, sampled every second: idle with nobody connected, while three
   people join and connect, and for ``--seconds`` of the call once all are connected.

Prints markdown and writes ``bench/results/calls-<time>.{json,md}`` and
``calls-latest.*``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import procstat

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
INSIDE = "VIDEOCHAT_BENCH_IN_NETNS"
NETNS = ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]

# On the joiner's page, before the click: note when join is clicked (epoch ms).
NOTE_CLICK_JS = """
() => {
  const button = document.querySelector('[data-testid="join-as-guest"]');
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


def _reexec_in_namespace(argv: list[str]) -> int:
    prefix = NETNS if os.geteuid() == 0 else ["unshare", "--user", "--map-root-user", *NETNS[1:]]
    env = {**os.environ, INSIDE: "1"}
    command = [*prefix, sys.executable, "-m", "bench.calls", *argv]
    return subprocess.run(command, cwd=REPO, env=env, check=False).returncode


class Sampler:
    """CPU and RSS of the server's process tree over a stretch of time."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def measure(self, seconds: float, *, until: Any = None) -> dict[str, Any]:
        """Sample every second for ``seconds`` (or until ``until()`` is true)."""
        started = time.monotonic()
        cpu_start = procstat.tree_cpu([self.pid])
        rss: list[int] = [procstat.tree_rss([self.pid])]
        while True:
            time.sleep(min(1.0, max(0.05, seconds - (time.monotonic() - started))))
            rss.append(procstat.tree_rss([self.pid]))
            elapsed = time.monotonic() - started
            if (until is not None and until()) or (until is None and elapsed >= seconds):
                break
            if until is not None and elapsed > seconds:
                break
        elapsed = time.monotonic() - started
        cpu = procstat.tree_cpu([self.pid]) - cpu_start
        return {
            "seconds": round(elapsed, 1),
            "cpu_seconds": round(cpu, 3),
            "cpu_percent_of_one_core": round(100 * cpu / elapsed, 2),
            "rss_mib_mean": round(statistics.mean(rss) / 2**20, 1),
            "rss_mib_max": round(max(rss) / 2**20, 1),
            "samples": len(rss),
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
        joiner.get_by_test_id("guest-name").fill(f"joiner{run}")
        joiner.evaluate(NOTE_CLICK_JS)
        joiner.get_by_test_id("join-as-guest").click()
        joiner_id = harness.wait_for(
            "the joiner's account", lambda p=joiner: p.evaluate("window.videochat.user?.id")
        )
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

    def summary(values: list[float]) -> dict[str, Any]:
        ordered = sorted(values)
        return {
            "median_ms": round(statistics.median(ordered)),
            "min_ms": round(ordered[0]),
            "max_ms": round(ordered[-1]),
            "runs_ms": [round(v) for v in values],
        }

    return {
        "runs": runs,
        "joiner_sees_host": summary(joiner_sees_host),
        "host_sees_joiner": summary(host_sees_joiner),
        "page_errors": errors,
    }


def _three_person_call(browser: Any, server: Any, seconds: float) -> dict[str, Any]:
    from tests.web import harness

    assert server.pid is not None
    sampler = Sampler(server.pid)
    idle = sampler.measure(10)
    errors: list[str] = []
    pages: dict[str, Any] = {}
    ids: dict[str, str] = {}
    room_id = ""
    started = time.monotonic()
    cpu_start = procstat.tree_cpu([server.pid])
    for name in ("alice", "bob", "carol"):
        page = harness.new_page(browser, server.url, errors)
        if room_id:
            page.goto(f"/chat/rooms/{room_id}")
            ids[name] = harness.join_as_guest(page, name)
        else:
            page.goto("/chat")
            ids[name] = harness.join_as_guest(page, name)
            room_id = harness.create_room(page, "Three people")
        pages[name] = page
    for name, page in pages.items():
        harness.wait_for_media(page, [ids[o] for o in pages if o != name], timeout=30)
    setup_seconds = time.monotonic() - started
    setup_cpu = procstat.tree_cpu([server.pid]) - cpu_start
    call = sampler.measure(seconds)
    frames = {
        name: {o: r["framesDecoded"] for o, r in harness.peer_report(page).items()}
        for name, page in pages.items()
    }
    for page in pages.values():
        page.context.close()
    return {
        "idle_no_sockets": idle,
        "joining": {
            "seconds": round(setup_seconds, 1),
            "cpu_seconds": round(setup_cpu, 3),
            "cpu_percent_of_one_core": round(100 * setup_cpu / setup_seconds, 2),
        },
        "in_call": call,
        "frames_decoded_at_end": frames,
        "page_errors": errors,
    }


def _sfu_join_runs(playwright: Any, tmp: Path, runs: int) -> dict[str, Any]:
    """``_join_runs`` with every call on a Janus started here."""
    from tests.sfu.janus_server import Janus
    from tests.web import harness
    from tests.web.janus_media import MEDIA_ADDRESS, media_interface

    # The interface comes first: a Chromium that sees it appear aborts its requests.
    with media_interface():
        janus = Janus(tmp / "janus", ice_address=MEDIA_ADDRESS)
        janus.start()
        server = harness.ServerProcess(
            tmp / "sfu-server",
            {
                "VIDEOCHAT_SFU__JANUS_URL": janus.api_url,
                "VIDEOCHAT_SFU__ADMIN_URL": janus.admin_url,
                "VIDEOCHAT_SFU__ADMIN_SECRET": janus.admin_secret,
                "VIDEOCHAT_SFU__ROOM_ADMIN_KEY": janus.room_admin_key,
                "VIDEOCHAT_SFU__THRESHOLD": "0",
            },
        )
        server.workdir.mkdir(parents=True, exist_ok=True)
        server.start()
        try:
            browser = harness.launch_chromium(playwright)
            try:
                return _join_runs(browser, server, runs)
            finally:
                browser.close()
        finally:
            server.stop()
            janus.stop()


def _markdown(result: dict[str, Any]) -> str:
    join, call = result["join_to_first_frame"], result["server_during_call"]
    lines = [
        f"Calls benchmark, {result['date']} ({result['machine']})",
        "",
        f"Join to first decoded remote frame, {join['runs']} runs (ms):",
        "",
        "| from the joiner's click to | median | min | max |",
        "|---|---:|---:|---:|",
    ]
    for key, label in (
        ("joiner_sees_host", "the host's picture on the joiner's page"),
        ("host_sees_joiner", "the joiner's picture on the host's page"),
    ):
        part = join[key]
        lines.append(f"| {label} | {part['median_ms']} | {part['min_ms']} | {part['max_ms']} |")
    sfu = result.get("join_to_first_frame_sfu")
    if sfu:
        for key, label in (
            ("joiner_sees_host", "the host's picture, through Janus (SFU)"),
            ("host_sees_joiner", "the joiner's picture, through Janus (SFU)"),
        ):
            part = sfu[key]
            lines.append(f"| {label} | {part['median_ms']} | {part['min_ms']} | {part['max_ms']} |")
    idle, joining, in_call = call["idle_no_sockets"], call["joining"], call["in_call"]
    lines += [
        "",
        "Server (its process tree) during a 3-person call:",
        "",
        "| phase | seconds | CPU, % of one core | RSS MiB (mean / max) |",
        "|---|---:|---:|---|",
        f"| idle, nobody connected | {idle['seconds']} | {idle['cpu_percent_of_one_core']} "
        f"| {idle['rss_mib_mean']} / {idle['rss_mib_max']} |",
        f"| three people join and connect | {joining['seconds']} "
        f"| {joining['cpu_percent_of_one_core']} | |",
        f"| in the call, all connected | {in_call['seconds']} "
        f"| {in_call['cpu_percent_of_one_core']} "
        f"| {in_call['rss_mib_mean']} / {in_call['rss_mib_max']} |",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--sfu-runs", type=int, default=10, help="joins on the SFU (0: none)")
    args = parser.parse_args()
    if os.environ.get(INSIDE) != "1":
        return _reexec_in_namespace(sys.argv[1:])

    from playwright.sync_api import sync_playwright
    from tests.sfu import janus_server
    from tests.web import harness

    with tempfile.TemporaryDirectory(prefix="videochat-bench-calls-") as tmp:
        server = harness.ServerProcess(Path(tmp))
        server.start()
        try:
            with sync_playwright() as playwright:
                browser = harness.launch_chromium(playwright)
                try:
                    started = time.monotonic()
                    joins = _join_runs(browser, server, args.runs)
                    call = _three_person_call(browser, server, args.seconds)
                finally:
                    browser.close()
                sfu = None
                if args.sfu_runs > 0 and janus_server.available():
                    sfu = _sfu_join_runs(playwright, Path(tmp), args.sfu_runs)
        finally:
            server.stop()
    load = os.getloadavg()
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{os.cpu_count()} cores, {platform.python_implementation()} "
        f"{platform.python_version()}, load average {load[0]:.1f} at the end",
        "total_seconds": round(time.monotonic() - started, 1),
        "join_to_first_frame": joins,
        "join_to_first_frame_sfu": sfu,
        "server_during_call": call,
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
