"""CPU time and memory of processes, read from /proc (Linux only)."""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat from the state on (the name may contain spaces)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process and of its reaped children (0 once it is gone)."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    # stat fields 14-17 (utime stime cutime cstime) are 11-14 here.
    return sum(int(value) for value in fields[11:15]) / TICKS


def own_cpu_seconds(pids: list[int]) -> dict[int, float]:
    """utime + stime of each process of these trees, without reaped children's time.

    Differences of two readings (``cpu_between``) count only the processes' own work:
    a child reaped in between (a browser's closed renderer) adds nothing to them.
    """
    found = {}
    for pid in {p for root in pids for p in tree(root)}:
        fields = _stat_fields(pid)
        if fields is not None:
            found[pid] = sum(int(value) for value in fields[11:13]) / TICKS
    return found


def cpu_between(earlier: dict[int, float], later: dict[int, float]) -> float:
    """CPU seconds between two ``own_cpu_seconds`` readings (new processes: all of theirs)."""
    return sum(seconds - earlier.get(pid, 0.0) for pid, seconds in later.items())


def rss_bytes(pid: int) -> int:
    """Resident memory of one process."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree(pid: int) -> list[int]:
    """The process and all its live descendants (uvicorn workers, wrappers)."""
    children: defaultdict[int, list[int]] = defaultdict(list)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None:
                children[int(fields[1])].append(int(entry.name))
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        pending.extend(children.get(current, ()))
    return found


def tree_cpu(pids: list[int]) -> float:
    """CPU seconds of several process trees together."""
    return sum(cpu_seconds(p) for root in pids for p in tree(root))


def tree_rss(pids: list[int]) -> int:
    """Resident bytes of several process trees together."""
    return sum(rss_bytes(p) for root in pids for p in tree(root))


def chromium_roots(root: int) -> list[int]:
    """Chromium's main processes among ``root``'s descendants (Playwright's browsers).

    Their renderer, GPU and network processes are their own descendants, so ``tree_cpu``
    of these counts all of Chromium once.
    """
    found = []
    for pid in tree(root):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        if command.endswith((b"/chromium", b"/chrome")):
            found.append(pid)
    nested = {child for pid in found for child in tree(pid) if child != pid}
    return [pid for pid in found if pid not in nested]


def pids_named(name: str) -> list[int]:
    """Processes whose command name is exactly ``name`` (e.g. redis-server)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@dataclass(frozen=True)
class CoreTimes:
    """Busy and total jiffies of each CPU, to see how much of a core others took."""

    busy: tuple[int, ...]
    total: tuple[int, ...]

    @classmethod
    def read(cls) -> CoreTimes:
        busy, total = [], []
        for line in Path("/proc/stat").read_text().splitlines():
            name, *values = line.split()
            if name.startswith("cpu") and name != "cpu":
                numbers = [int(v) for v in values[:8]]
                idle = numbers[3] + numbers[4]  # idle + iowait
                busy.append(sum(numbers) - idle)
                total.append(sum(numbers))
        return cls(tuple(busy), tuple(total))

    def busy_since(self, earlier: CoreTimes) -> list[float]:
        """Fraction of each core that was busy (anyone's work) since ``earlier``."""
        return [
            round((b - eb) / max(1, t - et), 3)
            for b, eb, t, et in zip(self.busy, earlier.busy, self.total, earlier.total, strict=True)
        ]
