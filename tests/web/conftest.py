"""The browser scenarios' runner, shared by the modules that read their results.

Each module (``test_web_client.py``: the views; ``test_web_calls.py``: mesh and SFU
calls) names its scenarios in a ``SCENARIOS`` table. The scenarios of a module's
selected tests run once, one after another, in a single process inside a
loopback-only network namespace, which starts the server(s) and one Chromium; each
scenario prints a JSON result that its test asserts on. Two modules, so that
pytest-xdist can run the two halves on two workers at once.
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

from tests.web.harness import CHROMIUM, RESULT_MARK
from tests.web.results import unavailable

ROOT = Path(__file__).resolve().parents[2]
# A namespace with nothing but loopback: no packet of these calls leaves the machine.
NETNS = ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]


@pytest.fixture(scope="module")
def netns() -> list[str]:
    """The command prefix that runs something inside a fresh loopback-only namespace."""
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    for tool in ("unshare", "ip"):
        if shutil.which(tool) is None:
            unavailable(f"{tool} is not installed")
    # As root (development, CI) a plain network namespace; otherwise try a user one.
    prefix = NETNS if os.geteuid() == 0 else ["unshare", "--user", "--map-root-user", *NETNS[1:]]
    probe = subprocess.run([*prefix, "true"], capture_output=True, text=True, timeout=15)
    if probe.returncode != 0:
        unavailable(f"cannot create a network namespace: {probe.stderr.strip()}")
    return prefix


@pytest.fixture(scope="module")
def scenario_results(netns: list[str], request: pytest.FixtureRequest) -> dict[str, Any]:
    """Run the scenarios of the module's selected tests; their results by name, plus
    the output."""
    module = Path(request.module.__file__).resolve()
    table: dict[str, tuple[str, float]] = request.module.SCENARIOS
    selected = {item.name for item in request.session.items if item.path.resolve() == module}
    wanted = [scenario for test, scenario in table.items() if test in selected]
    names = [name for name, _ in wanted]
    timeout = sum(budget for _, budget in wanted) + 60
    process = subprocess.Popen(
        [*netns, sys.executable, "-m", "tests.web.scenarios", *names],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Its own process group: on a timeout the runner, its servers and its
        # browser all go together.
        start_new_session=True,
    )
    timed_out = False
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        timed_out = True
    results: dict[str, Any] = {}
    for line in stdout.splitlines():
        if line.startswith(RESULT_MARK):
            result = json.loads(line[len(RESULT_MARK) :])
            results[result["scenario"]] = result
    note = f"ran over {timeout:.0f}s" if timed_out else f"exit {process.returncode}"
    results["__output__"] = f"{note}\n{stderr[-3000:]}"
    return results
