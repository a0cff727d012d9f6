"""Prometheus metrics, and the prototype's JSON summary computed from them."""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter(
    "videochat_http_requests_total", "HTTP requests", ["method", "route", "status"]
)
HTTP_DURATION = Histogram(
    "videochat_http_request_duration_seconds", "HTTP request duration", ["method", "route"]
)
WS_ACTIVE = Gauge("videochat_websocket_connections_active", "Open WebSocket connections")
WS_OPENED = Counter("videochat_websocket_connections_opened_total", "WebSockets accepted")
WS_CLOSED = Counter("videochat_websocket_connections_closed_total", "WebSockets closed", ["reason"])
WS_FRAMES_IN = Counter("videochat_websocket_frames_received_total", "Frames from clients")
WS_FRAMES_OUT = Counter("videochat_websocket_frames_sent_total", "Frames to clients")
WS_SLOW_CONSUMERS = Counter(
    "videochat_websocket_slow_consumers_total", "Connections cut off for not keeping up"
)
CHAT_MESSAGES = Counter("videochat_chat_messages_total", "Chat messages stored")
USERS_CREATED = Counter("videochat_users_created_total", "Accounts created (guests included)")
ROOMS_CREATED = Counter("videochat_rooms_created_total", "Rooms created")
LIVE_STREAMS_CREATED = Counter("videochat_live_streams_created_total", "Live streams created")
VIDEOS_UPLOADED = Counter("videochat_videos_uploaded_total", "Videos uploaded")
VIDEOS_PROCESSED = Counter("videochat_videos_processed_total", "Videos processed", ["outcome"])


def _total(counter: Counter, **match: str) -> float:
    total = 0.0
    for metric in counter.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total") and all(
                sample.labels.get(key) == value for key, value in match.items()
            ):
                total += sample.value
    return total


def _histogram_sum_count(histogram: Histogram) -> tuple[float, float]:
    total = count = 0.0
    for metric in histogram.collect():
        for sample in metric.samples:
            if sample.name.endswith("_sum"):
                total += sample.value
            elif sample.name.endswith("_count"):
                count += sample.value
    return total, count


def summary() -> dict[str, Any]:
    """The prototype's ``/metrics`` JSON, from the live counters."""
    total = _total(HTTP_REQUESTS)
    failed = sum(
        sample.value
        for metric in HTTP_REQUESTS.collect()
        for sample in metric.samples
        if sample.name.endswith("_total") and sample.labels.get("status", "0") >= "400"
    )
    seconds, count = _histogram_sum_count(HTTP_DURATION)
    return {
        "requests": {
            "total": int(total),
            "successful": int(total - failed),
            "failed": int(failed),
            "success_rate": round((total - failed) / total * 100, 2) if total else 100.0,
            "average_duration_ms": round(seconds / count * 1000, 3) if count else 0.0,
        },
        "websocket": {
            "active_connections": int(WS_ACTIVE._value.get()),
            "total_connections": int(_total(WS_OPENED)),
            "messages_sent": int(_total(WS_FRAMES_OUT)),
            "messages_received": int(_total(WS_FRAMES_IN)),
        },
        "video": {
            "live_streams_created": int(_total(LIVE_STREAMS_CREATED)),
            "videos_uploaded": int(_total(VIDEOS_UPLOADED)),
            "videos_processed": int(_total(VIDEOS_PROCESSED)),
        },
        "chat": {"messages": int(_total(CHAT_MESSAGES))},
    }
