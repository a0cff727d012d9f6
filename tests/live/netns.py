"""Run a scenario module in a fresh loopback-only network namespace (TESTING.md).

The same machinery as ``test_webrtc.py``: ``unshare --net`` with only ``lo`` up (as
root; otherwise a user namespace maps us to root), the scenario prints one
``RESULT_MARK`` + JSON line that the tests read.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.web.harness import RESULT_MARK

ROOT = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
NETNS = ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]


def skip_or_fail(reason: str) -> None:
    """Skip with the reason on a user's machine; in CI a missing tool fails the run."""
    if IN_CI:
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def netns_prefix() -> list[str]:
    """The command prefix that runs something inside a new loopback-only namespace."""
    missing = [tool for tool in ("unshare", "ip") if shutil.which(tool) is None]
    prefix = NETNS if os.geteuid() == 0 else ["unshare", "--user", "--map-root-user", *NETNS[1:]]
    reason = f"missing {missing}" if missing else ""
    if not missing:
        probe = subprocess.run([*prefix, "true"], capture_output=True, text=True, timeout=15)
        reason = probe.stderr.strip() if probe.returncode else ""
    if reason:
        skip_or_fail(f"cannot create a network namespace: {reason}")
    return prefix


def run_scenario(prefix: list[str], module: str, timeout: float) -> dict[str, Any]:
    """Run ``python -m module`` in the namespace; its result, whether ``ok`` or not."""
    process = subprocess.Popen(
        [*prefix, sys.executable, "-m", module],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # on a timeout the scenario and its children go together
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"{module} ran over {timeout} s\n{stderr[-3000:]}", pytrace=False)
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            result: dict[str, Any] = json.loads(line[len(RESULT_MARK) :])
            return result
    pytest.fail(f"{module} printed no result\n{stderr[-3000:]}", pytrace=False)
