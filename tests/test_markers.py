"""`make test-fast` leaves out every kind of test it says it does (tests/markers.py)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _fast_expression() -> str:
    """The marker expression of `make test-fast`, as the Makefile has it."""
    found = re.search(r"^FAST = (.+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert found, "the Makefile has no FAST expression"
    return found.group(1).strip()


def test_the_quick_run_leaves_out_every_postgresql_test() -> None:
    """A test parametrized with the PostgreSQL backend alone was in the quick run, which
    says it needs no PostgreSQL (four of tests/chat/test_writer.py's were)."""
    command = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", _fast_expression()]
    collected = subprocess.run(
        [*command, "tests/chat/test_writer.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert collected.returncode == 0, collected.stdout[-2000:] + collected.stderr[-2000:]
    ids = [line for line in collected.stdout.splitlines() if "::" in line]
    assert ids, collected.stdout[-2000:]  # the SQLite variants are quick
    assert not [test_id for test_id in ids if "[postgres" in test_id]
