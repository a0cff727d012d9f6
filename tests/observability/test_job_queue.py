"""The in-process job runner's waiting and running jobs: ``/health/ready`` and gauges."""

from __future__ import annotations

import asyncio

import httpx

from tests.support import LiveServer
from videochat.media.tasks import Outcome


def _gauge(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


async def test_waiting_and_running_jobs_move_with_the_queue(
    client: httpx.AsyncClient, server: LiveServer
) -> None:
    jobs = server.context.video_jobs
    gate = asyncio.Event()
    started: list[str] = []

    async def held(video_id: str) -> Outcome:
        started.append(video_id)
        await gate.wait()
        return Outcome.DONE

    real = jobs.processor.process
    jobs.processor.process = held

    async def reading() -> tuple[dict[str, object], str]:
        ready = (await client.get("/health/ready")).json()["checks"]["job_queue"]
        return ready, (await client.get("/metrics/prometheus")).text

    try:
        ready, scrape = await reading()
        assert (ready["backend"], ready["queued"], ready["running"]) == ("memory", 0, 0)
        assert _gauge(scrape, "videochat_jobs_running") == 0
        await jobs.enqueue("video-one")
        await jobs.enqueue("video-two")
        async with asyncio.timeout(5):
            while not started:
                await asyncio.sleep(0.01)
        ready, scrape = await reading()
        # One worker (job_concurrency 1): one runs, one waits.
        assert (ready["queued"], ready["running"]) == (1, 1)
        assert _gauge(scrape, "videochat_jobs_running") == 1
        assert _gauge(scrape, "videochat_job_queue_depth") == 1
        gate.set()
        async with asyncio.timeout(5):
            while (await reading())[0]["running"] != 0:
                await asyncio.sleep(0.01)
        ready, scrape = await reading()
        assert (ready["queued"], ready["running"]) == (0, 0)
        assert _gauge(scrape, "videochat_job_queue_depth") == 0
        assert started == ["video-one", "video-two"]
    finally:
        gate.set()
        jobs.processor.process = real
