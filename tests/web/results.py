"""Reading the browser scenarios' results in their tests (the runner is ``conftest.py``)."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
LOOPBACK = "127.0.0.1"
# Grey-level variance of a remote video: black or one flat colour is ~0, the fake
# camera's picture is in the hundreds.
MIN_PICTURE_VARIANCE = 20.0


def unavailable(reason: str) -> None:
    """Skip on a developer's machine; in CI a missing prerequisite fails the run."""
    if IN_CI:
        pytest.fail(f"{reason} (CI must run the browser tests)", pytrace=False)
    pytest.skip(reason)


def result_of(
    results: dict[str, Any], name: str, *, expected_console: tuple[str, ...] = ()
) -> dict[str, Any]:
    """One scenario's result, or a failure with its report.

    Console errors and warnings fail the test unless they contain one of
    ``expected_console``. A scenario that could not run for want of a tool it needs
    (Janus, coturn: ``make test-deps`` installs both) is ``unavailable``.
    """
    result: dict[str, Any] | None = results.get(name)
    if result is None:
        pytest.fail(f"scenario {name} reported nothing: {results['__output__']}", pytrace=False)
    if "skipped" in result:
        unavailable(result["skipped"])
    if not result["ok"]:
        report = {key: result.get(key) for key in ("error", "call_traces", "page_errors")}
        pytest.fail(
            f"scenario {name} failed: {json.dumps(report, indent=1)}\n"
            f"{result.get('traceback', '')}\nserver log:\n{result.get('server_log', '')}",
            pytrace=False,
        )
    unexpected = [
        entry
        for entry in result["page_errors"]
        if not any(expected in entry for expected in expected_console)
    ]
    # (The entries in the message: a custom message hides pytest's own diff, and a
    # CI log is all there is of a flaky run.)
    assert unexpected == [], f"pages reported errors (or opened dialogs): {unexpected}"
    print(f"\n{name}: {result['seconds']}s")
    return result
