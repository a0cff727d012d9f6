"""Sample a server under load with py-spy and summarise where its CPU goes.

py-spy is not a project dependency: it runs through ``uvx py-spy`` (fetched from
PyPI on first use) and the profile is skipped with a note when that fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections import Counter
from pathlib import Path
from typing import Any


def _py_spy() -> list[str] | None:
    if shutil.which("py-spy"):
        return ["py-spy"]
    if shutil.which("uvx"):
        return ["uvx", "py-spy"]
    return None


async def record(pid: int, seconds: float, output: Path, *, gil: bool = False) -> str | None:
    """Record ``seconds`` of collapsed stacks of ``pid``; None when it worked.

    ``gil``: sample only the thread holding the GIL. Database driver threads (aiosqlite)
    waiting on their queue otherwise look busy and swamp the profile.
    """
    command = _py_spy()
    if command is None:
        return "py-spy not available (neither py-spy nor uvx on PATH)"
    process = await asyncio.create_subprocess_exec(
        *command, "record", "--pid", str(pid), "--duration", str(round(seconds)),
        "--rate", "250", "--format", "raw", "--nonblocking", "--output", str(output),
        *(["--gil"] if gil else []),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        _, err = await asyncio.wait_for(process.communicate(), seconds + 120)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        return "py-spy did not finish in time"
    if process.returncode != 0 or not await asyncio.to_thread(output.exists):
        return f"py-spy failed: {err.decode(errors='replace')[-300:]}"
    return None


def summarise(collapsed: Path, top: int = 12) -> dict[str, Any]:
    """Shares of the sampled CPU: by component (see ``_component``) and by leaf function."""
    components: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        leaves[_short(frames[-1])] += count
        components[_component(frames)] += count
    if total == 0:
        return {"samples": 0}

    def share(counter: Counter[str]) -> list[list[Any]]:
        return [[name, round(n / total, 3)] for name, n in counter.most_common(top)]

    return {"samples": total, "components": share(components), "self": share(leaves)}


# Standard-library modules whose time belongs to whoever called them, except these.
_STDLIB_OWN = {"json": "json (stdlib)", "asyncio/queues.py": "asyncio queues"}
_GROUPS = {
    "sqlalchemy": "database: SQLAlchemy",
    "aiosqlite": "database: aiosqlite driver",
    "sqlite3": "database: aiosqlite driver",
    "asyncpg": "database: asyncpg driver",
    "redis": "broker: redis client",
    "starlette": "starlette/FastAPI",
    "fastapi": "starlette/FastAPI",
    "structlog": "logging",
    "prometheus_client": "metrics",
    "limits": "rate limits",
    "jwt": "auth (JWT)",
}


def _component(frames: list[str]) -> str:
    """Who a sample's CPU belongs to: the innermost frame of a known component."""
    for frame in reversed(frames):
        path = frame.partition(" (")[2].rsplit(":", 1)[0]
        package = path.split("/", 1)[0]
        for prefix, name in _STDLIB_OWN.items():
            if path.startswith(prefix):
                return name
        if path.endswith("permessage_deflate.py"):
            return "permessage-deflate (zlib)"
        if path.startswith("uvicorn/protocols"):
            return "uvicorn protocol"
        if package == "websockets":
            return "websockets framing"
        if package == "videochat" and path != "videochat/cli.py":
            return "videochat/" + path.split("/")[1].removesuffix(".py")
        if package in _GROUPS:
            return _GROUPS[package]
        if package in {"bench"}:
            return "baseline app"
    # Only the entry frames (uvicorn's runner) are left: uvloop's own C code.
    return "event loop (uvloop), other"


def _short(frame: str) -> str:
    """``func (pkg/module.py:12)`` -> ``func (pkg/module.py)``: line numbers merged."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rstrip(')').rsplit(':', 1)[0]})"
