"""Fuzzing: generated requests for every operation in the OpenAPI document, zero 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck

from tests.processes import free_port, server_env, start_server, stop_server

EXAMPLES_PER_OPERATION = 12


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real server process on SQLite (the fuzzer's calls are blocking)."""
    workdir: Path = tmp_path_factory.mktemp("fuzz")
    port = free_port()
    process = start_server(server_env(workdir, f"sqlite+aiosqlite:///{workdir / 'fuzz.db'}"), port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_server(process)


def test_no_operation_answers_5xx(fuzz_target: str) -> None:
    base = fuzz_target
    guest = httpx.post(f"{base}/users", json={"username": "fuzzer"}).json()
    room = httpx.post(
        f"{base}/rooms",
        json={"name": "Fuzzed"},
        headers={"Authorization": f"Bearer {guest['access_token']}"},
    ).json()
    headers = {"Authorization": f"Bearer {guest['access_token']}"}
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @hypothesis.settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @hypothesis.given(case=operation.as_strategy())
        def run(case: schemathesis.Case) -> None:
            # Half the cases aim at a real room, so checks past "not found" run too.
            if (
                case.path_parameters
                and "room_id" in case.path_parameters
                and hash(str(case.query)) % 2
            ):
                case.path_parameters["room_id"] = room["id"]
            response = case.call(base_url=base, headers=headers, timeout=15)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}")

        run()
    assert operations > 20
    assert failures == []
