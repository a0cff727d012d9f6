# syntax=docker/dockerfile:1
# videochat: one image for `videochat serve`, `videochat worker`, `videochat migrate`.

FROM python:3.11-slim-bookworm AS build
COPY --from=ghcr.io/astral-sh/uv:0.8 /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src
# Dependencies first (from the lock file only), so code changes reuse this layer.
COPY pyproject.toml uv.lock README.md ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project
COPY src ./src
# Installed as a wheel, not editable: the runtime image needs no source tree.
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable

FROM python:3.11-slim-bookworm
# PyAV and aiortc wheels bundle FFmpeg, libvpx, libopus and libsrtp. The one system
# package: janus-pp-rec (Debian 12's janus-tools), which turns a call's Janus
# recordings into media files for the job that composes them (docs/DEPLOY.md).
RUN apt-get update \
    && apt-get install -y --no-install-recommends janus-tools \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --user-group --home-dir /app videochat \
    && mkdir -p /data \
    && chown videochat:videochat /data
COPY --from=build /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    VIDEOCHAT_ENVIRONMENT=production \
    VIDEOCHAT_DATA_DIR=/data \
    VIDEOCHAT_HOST=0.0.0.0 \
    VIDEOCHAT_PORT=8000
USER videochat
WORKDIR /app
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=4)"]
CMD ["videochat", "serve", "--host", "0.0.0.0", "--port", "8000"]
