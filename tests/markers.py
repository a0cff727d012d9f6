"""Markers by kind of test, set at collection: ``make test-fast`` leaves these kinds out.

- ``browser``: drives Chromium (the web client's scenarios).
- ``cluster``: two app instances, several worker processes, or Redis fan-out between them.
- ``slow``: takes more than ~5 s (transcodes, killed workers, restarted services, live media).
- ``postgres``: runs on PostgreSQL (``conftest.BACKENDS`` marks its own variants; a test
  parametrized with the ``postgres`` backend alone, or asking for ``postgres_url``, here).
"""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).parent

BROWSER_DIRS = ("web/",)
# Fixtures that start more than one instance of the server.
CLUSTER_FIXTURES = frozenset({"two_instances"})
CLUSTER_MODULES = frozenset(
    {
        "cache/test_two_instances.py",
        "observability/test_multiprocess.py",
        "realtime/test_redis_restart.py",
        "realtime/test_scale_out.py",
    }
)
CLUSTER_TESTS = frozenset(
    {"chat/test_writer.py::test_two_instances_writing_the_same_rooms_publish_in_id_order"}
)
SLOW_DIRS = ("web/", "live/")
SLOW_MODULES = frozenset(
    {
        "test_fuzz.py",
        "test_persistence.py",
        "test_postgres_restart.py",
        "media/test_transcode.py",
        "media/test_worker.py",
        "realtime/test_redis_restart.py",
        "realtime/test_socket_fuzz.py",
    }
)
SLOW_TESTS = frozenset(
    {
        "observability/test_metrics.py::test_sockets_closed_by_the_server_are_counted_by_reason",
        "test_limits.py::test_forwarded_for_counts_only_from_trusted_proxies",
        # 2-5 s each (measured with --durations on the fast subset)
        "test_security.py::test_slow_request_headers_are_cut_off",
        "realtime/test_slow_consumer.py::test_slow_consumer_is_disconnected_and_others_are_not",
        "test_cli.py::test_create_admin_makes_a_registered_admin_that_can_log_in",
        "test_cli.py::test_check_reports_every_service",
        "media/test_quota.py::test_expired_unfinished_uploads_are_swept",
        "media/test_quota.py::test_unfinished_uploads_are_capped_per_user_even_when_requested_at_once",
        "realtime/test_abuse.py::test_a_burst_of_joins_sends_few_lists_and_the_last_one_is_complete",
    }
)


def _where(item: pytest.Item) -> tuple[str, str]:
    """The item's module path under tests/ and its test name without parameters."""
    module = item.path.relative_to(TESTS_DIR).as_posix()
    name = getattr(item, "originalname", item.name)
    return module, f"{module}::{name}"


def mark_by_kind(items: list[pytest.Item]) -> None:
    """Add ``browser``, ``cluster``, ``slow`` and ``postgres`` by directory, module, test,
    fixture or backend."""
    for item in items:
        module, test = _where(item)
        fixtures = set(getattr(item, "fixturenames", ()))
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("backend") if callspec is not None else None
        if backend == "postgres" or "postgres_url" in fixtures:
            item.add_marker(pytest.mark.postgres)
        if module.startswith(BROWSER_DIRS):
            item.add_marker(pytest.mark.browser)
        if module in CLUSTER_MODULES or test in CLUSTER_TESTS or fixtures & CLUSTER_FIXTURES:
            item.add_marker(pytest.mark.cluster)
        if module.startswith(SLOW_DIRS) or module in SLOW_MODULES or test in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)


# The modules that take longest, each start to end in one worker (the browser views ~160 s,
# the calls ~90 s, the soak ~80 s).
LONGEST_MODULES = ("web/test_web_calls.py", "web/test_web_client.py", "test_soak.py")


def longest_first(items: list[pytest.Item]) -> None:
    """Order modules longest first (the browser ones, the soak, then those with a slow or
    cluster test), keeping each module's own order. pytest-xdist (``--dist loadfile
    --no-loadscope-reorder``) hands them out in this order, so the last module to start
    is a short one and no worker is left with a long one at the end."""

    def weight(module: str) -> int:
        if module in LONGEST_MODULES:
            return LONGEST_MODULES.index(module)
        kinds = module_kinds.get(module, set())
        if "browser" in kinds:
            return len(LONGEST_MODULES)
        return len(LONGEST_MODULES) + (1 if kinds & {"slow", "cluster"} else 2)

    module_kinds: dict[str, set[str]] = {}
    for item in items:
        kinds = module_kinds.setdefault(_where(item)[0], set())
        kinds.update(mark.name for mark in item.iter_markers())
    items.sort(key=lambda item: weight(_where(item)[0]))
