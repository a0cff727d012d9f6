"""The cache stores under test: in process and in Redis, behind one interface."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from tests import services
from videochat.kit.cache import CacheStore, MemoryCache, RedisCache

STORES = ["memory", "redis"]


@pytest.fixture(params=STORES)
async def store(request: pytest.FixtureRequest) -> AsyncIterator[CacheStore]:
    """A fresh store of each kind (Redis under a prefix of its own)."""
    if request.param == "memory":
        yield MemoryCache(max_entries=100, default_ttl=30)
        return
    request.applymarker(pytest.mark.redis)
    services.redis_available()
    redis = RedisCache(
        services.REDIS_URL, default_ttl=30, prefix=f"videochat-test:{uuid.uuid4().hex[:8]}"
    )
    try:
        yield redis
    finally:
        await redis.clear()
        await redis.close()
