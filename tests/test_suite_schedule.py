"""How `make test` shares the suite among pytest-xdist workers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.scheduling import OneWorkerForTheBrowser

ROOT = Path(__file__).resolve().parent.parent


def test_the_browser_modules_are_one_unit_of_work_and_other_modules_one_each() -> None:
    # The scope of a test id needs no state of the scheduler's.
    split = object.__new__(OneWorkerForTheBrowser)._split_scope
    calls = split("tests/web/test_web_calls.py::test_six_people_in_one_call_on_the_sfu")
    views = split("tests/web/test_web_client.py::test_api_docs_render_offline")
    assert calls == views
    writer = split("tests/chat/test_writer.py::test_order[sqlite]")
    assert writer == "tests/chat/test_writer.py"
    assert split("tests/chat/test_flows.py::test_a") != writer


@pytest.fixture(scope="module")
def collected() -> list[str]:
    listing = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return [line for line in listing.stdout.splitlines() if "::" in line]


@pytest.mark.slow  # a whole collection in a subprocess: ~10 s
def test_modules_come_longest_first_and_each_stays_whole(collected: list[str]) -> None:
    modules = [nodeid.split("::")[0] for nodeid in collected]
    # Each module's tests are together: the sort moved modules, it never split one.
    runs = [
        module for index, module in enumerate(modules) if index == 0 or modules[index - 1] != module
    ]
    assert len(runs) == len(set(runs))
    order = runs
    assert order[:3] == [
        "tests/web/test_web_calls.py",
        "tests/web/test_web_client.py",
        "tests/test_soak.py",
    ]
    # A quick module (no slow, cluster or browser test) never comes before a slow one.
    assert order.index("tests/kit/test_text.py") > order.index("tests/media/test_transcode.py")
