"""Video jobs through the machine's Redis and real ``videochat worker`` processes.

The API runs in the test's loop with ``VIDEOCHAT_REDIS__URL`` set (so it only queues
jobs); the workers are separate processes sharing its database and data folder. Each
test has its own queue name, removed from Redis afterwards.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests import services
from tests.media import samples
from tests.media.api_helpers import leftovers, new_slot, put, wait_for
from tests.processes import free_port, server_env
from tests.support import (
    connect_ws,
    create_guest,
    create_room,
    eventually,
    receive_until,
    run_server,
    ws_path,
)
from videochat.config import Settings

ROOT = Path(__file__).resolve().parents[2]
SLOW_MARKER_ENV = "VIDEOCHAT_TEST_SLOW_MARKER"


def slow_worker_main() -> None:
    """``videochat worker`` whose first transcode (across processes) stalls for a minute.

    The marker file is both the signal that the stall began (holding the stalling
    process's pid) and the flag that makes every later transcode run normally.
    """
    from videochat.cli import main
    from videochat.media import tasks

    real = tasks.transcode_to_hls
    marker = os.environ[SLOW_MARKER_ENV]

    def stalled(source: Path, out_dir: Path, **kw: Any) -> Any:
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return real(source, out_dir, **kw)
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        for _ in range(600):
            time.sleep(0.1)
            kw["progress"](0.0)  # still alive: lets a shutdown interrupt it
        return real(source, out_dir, **kw)

    tasks.transcode_to_hls = stalled  # type: ignore[assignment]
    raise SystemExit(main(["worker"]))


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("worker-clip") / "clip.mp4"
    return samples.write_video(path, width=160, height=90, seconds=1.0).read_bytes()


@pytest.fixture
def queue_name() -> Iterator[str]:
    services.redis_available()
    name = f"videochat-test-{uuid.uuid4().hex[:12]}"
    yield name
    client = redis.Redis.from_url(services.REDIS_URL)
    try:
        for pattern in (f"saq:{name}:*", f"saq:job:{name}:*"):
            keys = list(client.scan_iter(match=pattern, count=500))
            if keys:
                client.delete(*keys)
    finally:
        client.close()


MEDIA = {
    "segment_seconds": 1.0,
    "job_heartbeat_seconds": 2,
    "job_sweep_seconds": 1,
    "job_retry_delay_seconds": 0.0,
}


@pytest.fixture
def settings(make_settings: Callable[..., Settings], queue_name: str) -> Settings:
    return make_settings(
        redis={"url": services.REDIS_URL}, media={**MEDIA, "job_queue_name": queue_name}
    )


def _worker_env(settings: Settings, **extra: str) -> dict[str, str]:
    media = {f"VIDEOCHAT_MEDIA__{key.upper()}": str(value) for key, value in MEDIA.items()}
    return server_env(
        settings.data_dir,
        settings.resolved_database_url,
        VIDEOCHAT_REDIS__URL=services.REDIS_URL,
        VIDEOCHAT_MEDIA__JOB_QUEUE_NAME=settings.media.job_queue_name,
        VIDEOCHAT_LOG_LEVEL="INFO",
        **(media | extra),
    )


def _start_worker(env: dict[str, str], log: Path, *, slow: bool = False) -> subprocess.Popen[bytes]:
    code = "from tests.media.test_worker import slow_worker_main; slow_worker_main()"
    command = ["-c", code] if slow else ["-m", "videochat.cli", "worker"]
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, *command], env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
        )


def _stop(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait(5)


async def _setup(client: httpx.AsyncClient) -> tuple[dict[str, Any], dict[str, Any]]:
    user = await create_guest(client, "uploader")
    room = await create_room(client, user["access_token"], "Worker videos")
    return user, room


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_worker_process_runs_the_job_and_tells_the_room(
    settings: Settings, clip: bytes, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    worker = _start_worker(_worker_env(settings), log)  # starts up while the API does
    async with (
        run_server(settings) as live,
        httpx.AsyncClient(base_url=live.url, timeout=15) as client,
    ):
        try:
            user, room = await _setup(client)
            token = user["access_token"]
            async with connect_ws(live, ws_path(room["id"], user["id"], token)) as socket:
                await receive_until(socket, "presence")
                slot = await new_slot(client, token, room["id"])
                response = await put(client, slot["upload_url"], clip, token)
                assert response.status_code == 200, response.text
                seen = []
                while not seen or seen[-1] not in {"ready", "failed"}:
                    frame = await receive_until(socket, "video_status", timeout=60)
                    seen.append(frame["status"])
                # "processing" and "ready" came from the worker, through Redis.
                assert seen == ["pending", "uploaded", "processing", "ready"], log.read_text()
            video = await wait_for(client, slot["id"], token)
            assert video["duration_seconds"] == pytest.approx(1.0, abs=0.1)
            master = await client.get(video["playback_url"])
            assert master.status_code == 200 and "#EXT-X-STREAM-INF" in master.text
            assert not (settings.data_dir / "uploads" / f"{slot['id']}.source").exists()
        finally:
            code = _stop(worker)
        assert code == 0, log.read_text()[-3000:]


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_a_worker_killed_mid_job_loses_nothing(
    settings: Settings, clip: bytes, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    marker = tmp_path / "transcode-started"
    env = _worker_env(settings, **{SLOW_MARKER_ENV: str(marker)})
    # Two workers from the start (start-up is the slow part): whichever takes the job
    # stalls in it and is killed; the other one must finish it.
    workers = [_start_worker(env, log, slow=True) for _ in range(2)]
    try:
        async with (
            run_server(settings) as live,
            httpx.AsyncClient(base_url=live.url, timeout=15) as client,
        ):
            user, room = await _setup(client)
            token = user["access_token"]
            slot = await new_slot(client, token, room["id"])
            assert (await put(client, slot["upload_url"], clip, token)).status_code == 200
            async with asyncio.timeout(60):
                while not marker.exists() or not marker.read_text():
                    assert all(w.poll() is None for w in workers), log.read_text()[-3000:]
                    await asyncio.sleep(0.05)
            await wait_for(client, slot["id"], token, {"processing"})
            (busy,) = [w for w in workers if w.pid == int(marker.read_text())]
            busy.kill()  # SIGKILL mid-transcode: no cleanup, no goodbye to Redis
            busy.wait(10)

            video = await wait_for(client, slot["id"], token, timeout=60)
            assert video["status"] == "ready", (video, log.read_text()[-3000:])
            assert (await client.get(video["playback_url"])).status_code == 200
            names = {path.name for path in leftovers(settings.data_dir, slot["id"])}
            assert names == {slot["id"]}  # only the published HLS folder is left
            assert "video.job_swept" in log.read_text()  # taken back from the dead worker
    finally:
        for worker in workers:
            if worker.poll() is None:
                _stop(worker)


def _gauge(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_queue_depth_and_running_jobs_are_reported(
    make_settings: Callable[..., Settings], queue_name: str, clip: bytes, tmp_path: Path
) -> None:
    """SAQ's waiting and running jobs in ``/health/ready``, the API's and the worker's scrape."""
    # A heartbeat that a starved worker cannot miss: its stalled job must stay running.
    media = {**MEDIA, "job_queue_name": queue_name, "job_heartbeat_seconds": 30}
    settings = make_settings(redis={"url": services.REDIS_URL}, media=media)
    log = tmp_path / "worker.log"
    marker = tmp_path / "transcode-started"
    port = free_port()
    env = _worker_env(
        settings,
        **{
            SLOW_MARKER_ENV: str(marker),
            "VIDEOCHAT_OBSERVABILITY__WORKER_METRICS_PORT": str(port),
            "VIDEOCHAT_MEDIA__JOB_HEARTBEAT_SECONDS": "30",
        },
    )
    worker: subprocess.Popen[bytes] | None = None
    async with (
        run_server(settings) as live,
        httpx.AsyncClient(base_url=live.url, timeout=15) as client,
    ):
        try:

            async def job_queue() -> dict[str, Any]:
                check: dict[str, Any] = (await client.get("/health/ready")).json()["checks"]
                return check["job_queue"]

            assert await job_queue() == {
                "status": "healthy",
                "backend": "redis",
                "queued": 0,
                "running": 0,
            }
            user, room = await _setup(client)
            token = user["access_token"]
            for _ in range(2):  # no worker yet: both wait in Redis
                slot = await new_slot(client, token, room["id"])
                assert (await put(client, slot["upload_url"], clip, token)).status_code == 200
            assert (await job_queue())["queued"] == 2
            scrape = (await client.get("/metrics/prometheus")).text
            assert _gauge(scrape, "videochat_job_queue_depth") == 2

            # A worker takes the first and stalls in it: one running, one waiting.
            worker = _start_worker(env, log, slow=True)
            seen: dict[str, Any] = {}
            try:
                async with asyncio.timeout(60):
                    while (seen := await job_queue())["running"] != 1 or not marker.exists():
                        assert worker.poll() is None, log.read_text()[-3000:]
                        await asyncio.sleep(0.1)
            except TimeoutError:
                began = marker.exists()
                pytest.fail(f"queue {seen}, stall began: {began}\n{log.read_text()[-3000:]}")
            assert (await job_queue())["queued"] == 1
            # The worker serves its own metrics for Prometheus.
            text = ""
            try:
                async with asyncio.timeout(60):
                    while True:
                        try:
                            url = f"http://127.0.0.1:{port}/metrics"
                            text = (await client.get(url, timeout=2)).text
                        except httpx.HTTPError as exc:
                            text = f"unreachable: {exc!r}"
                        if (
                            _gauge(text, "videochat_jobs_running") == 1
                            and _gauge(text, "videochat_job_queue_depth") == 1
                        ):
                            break
                        await asyncio.sleep(0.2)
            except TimeoutError:
                # Seen once in a clean-clone run under load: say what the worker served.
                gauges = [line for line in text.splitlines() if "job" in line]
                pytest.fail(f"worker metrics: {gauges or text[:500]}\n{log.read_text()[-3000:]}")
            assert "videochat_video_processing_duration_seconds" in text
        finally:
            if worker is not None:
                _stop(worker)


async def test_sweeps_run_as_often_as_the_setting_says(settings: Settings) -> None:
    """SAQ's sweep lock would otherwise hold for 60 s: a killed worker's job sat that long."""
    from videochat.media.worker import create_queue

    queue = create_queue(settings)  # job_sweep_seconds=1 (MEDIA above)
    await queue.connect()
    try:
        await queue.sweep()
        ttl = await queue.redis.ttl(queue.namespace("sweep"))
        assert 0 < ttl <= settings.media.job_sweep_seconds
        # The lock goes away by itself: the next sweep (from any worker) takes it again.

        async def lock_gone() -> bool:
            return not await queue.redis.exists(queue.namespace("sweep"))

        await eventually(lock_gone, timeout=settings.media.job_sweep_seconds + 2)
        await queue.sweep()
        assert await queue.redis.exists(queue.namespace("sweep"))
    finally:
        await queue.disconnect()


async def test_a_job_a_worker_is_taking_is_not_swept_from_under_it(settings: Settings) -> None:
    """A worker takes a job in two steps: it moves it to the active list, then marks it
    active. SAQ's own sweep, landing between the two, took it for abandoned: it aborted
    the job under its worker and queued it again (tobymao/saq#277; seen as a transcode
    cancelled a second after it began, the video then encoded twice)."""
    from saq.job import Status

    from videochat.media.worker import create_queue, enqueue_video

    queue = create_queue(settings)
    await queue.connect()
    queued, active = queue.namespace("queued"), queue.namespace("active")
    video_id = uuid.uuid4().hex  # SAQ's abort marker is named by the key alone
    try:
        assert await enqueue_video(queue, settings.media, video_id)
        # The first step of a worker's dequeue, and no second step yet.
        job_id = await queue.redis.lmove(queued, active, "LEFT", "RIGHT")
        assert job_id is not None

        async def sweep_now() -> list[str]:
            await queue.redis.delete(queue.namespace("sweep"))  # the period's lock
            return await queue.sweep()

        assert await sweep_now() == []
        assert await sweep_now() == []  # a second look does not change its mind
        job = await queue.job(video_id)
        assert job is not None and job.status is Status.QUEUED
        assert await queue.redis.lrange(active, 0, -1) == [job_id]

        # A worker that died between the two steps: once the grace is over, the job
        # goes back to the queue for another worker.
        queue.claim_grace_seconds = 0
        assert await sweep_now() == [job_id.decode()]
        assert await queue.redis.lrange(active, 0, -1) == []
        assert await queue.redis.lrange(queued, 0, -1) == [job_id]
    finally:
        await queue.disconnect()
