"""Settings, read from the environment (``VIDEOCHAT_`` prefix, ``__`` for nesting)."""

from __future__ import annotations

import contextlib
import enum
import os
import secrets
import stat
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Published (it is in this file): only the ``test`` environment signs with it. Anywhere
# else, unset or set to this, the server signs with a secret kept in the data dir.
DEFAULT_JWT_SECRET = "change-me-development-secret-not-for-production"
# The data dir's file holding the generated signing secret (mode 0600).
SECRET_FILE = "jwt-secret"


class Environment(enum.StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class AuthMode(enum.StrEnum):
    TOKEN = "token"
    OPEN = "open"


class JWTSettings(BaseModel):
    secret: SecretStr = SecretStr(DEFAULT_JWT_SECRET)
    algorithm: str = "HS256"
    issuer: str = "videochat"
    audience: str = "videochat"
    access_ttl_seconds: int = Field(default=15 * 60, ge=10)
    refresh_ttl_seconds: int = Field(default=30 * 24 * 3600, ge=60)
    # A spent refresh token presented again this soon after its use rotates once more
    # instead of revoking its family: the answer to its use was lost (a page unloaded
    # mid-request, a dropped connection), and the client still holds only the spent one.
    refresh_reuse_grace_seconds: int = Field(default=30, ge=0, le=300)
    # Guests have no password to log in again with, so their token lives longer.
    guest_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=60)
    # A socket ticket (POST /auth/socket-ticket) opens one socket, within this long.
    socket_ticket_ttl_seconds: int = Field(default=30, ge=5, le=300)


class DatabaseSettings(BaseModel):
    pool_size: int = Field(default=10, ge=1)
    max_overflow: int = Field(default=20, ge=0)
    pool_timeout_seconds: float = Field(default=30, gt=0)
    echo: bool = False
    # Apply migrations when the app starts (the CLI's ``serve`` migrates first and
    # turns this off for its workers).
    auto_migrate: bool = True


class RedisSettings(BaseModel):
    url: str | None = None


class CacheSettings(BaseModel):
    # Hot reads (a room with its members and roles, a user's public profile) are cached:
    # in this process by default, in Redis when VIDEOCHAT_REDIS__URL is set (shared by
    # every instance). Every write invalidates what it changed, so TTL only bounds memory
    # and what a lost invalidation (Redis unreachable at that moment) could leave behind.
    enabled: bool = True
    ttl_seconds: float = Field(default=60.0, gt=0, le=86400)
    # Entries the in-process cache keeps (least recently used go first).
    max_entries: int = Field(default=10_000, ge=1)


class ObservabilitySettings(BaseModel):
    # Turn off the Prometheus middleware (request counters and durations) or the
    # per-request log line, e.g. to measure what they cost.
    metrics_enabled: bool = True
    request_logs: bool = True
    # ``videochat worker`` serves its Prometheus metrics on this port (0: not at all).
    worker_metrics_port: int = Field(default=0, ge=0, le=65535)
    worker_metrics_host: str = "127.0.0.1"
    # Bearer token for /metrics, /metrics/prometheus and /health's stats. Set, they need
    # it; unset, they are public except in production, where they are closed.
    metrics_token: SecretStr | None = None
    # /health's totals (messages, rooms, users) are counted at most once per this long.
    health_stats_ttl_seconds: float = Field(default=10.0, ge=0, le=3600)


class RateLimitSettings(BaseModel):
    enabled: bool = True
    # HTTP requests per window: per user when the request carries a valid token, per
    # address when it does not; signed-in requests also count per address against
    # ``requests_per_ip``, a backstop for one address with many throwaway accounts,
    # wide because many people share an address (an office's NAT).
    requests: int = Field(default=100, ge=1)
    requests_per_ip: int = Field(default=1000, ge=1)
    window_seconds: int = Field(default=60, ge=1)
    # HLS reads (GET/HEAD of /live/... and /media/videos/...) are not counted: players
    # poll live playlists every segment. Off, they count like any other request.
    exempt_media: bool = True
    # Socket connects per address per window, and frames per connection per window.
    # Many people share an address (an office's NAT, a carrier's): after a restart a
    # whole office reconnects within seconds.
    ws_connects: int = Field(default=300, ge=1)
    # Sockets one address may hold open at once (per instance): a backstop against one
    # host holding sockets by the thousand (~35 KB each), wide enough for an office
    # behind one NAT (10 refused the 11th colleague of a meeting).
    ws_connections_per_ip: int = Field(default=200, ge=1)
    # Sockets one account may hold open at once (per instance): its tabs and devices.
    ws_connections_per_user: int = Field(default=10, ge=1)
    ws_frames: int = Field(default=60, ge=1)
    ws_frames_window_seconds: int = Field(default=10, ge=1)
    # Writes (POST, PUT, PATCH, DELETE) per authenticated user per window, on top of
    # the per-IP limit: one account cannot flood from many addresses.
    user_writes: int = Field(default=60, ge=1)
    user_writes_window_seconds: int = Field(default=60, ge=1)
    # Requests on an upload slot (tus HEAD/PATCH/DELETE, the compatible PUT) per user, or
    # per slot without a token, per window: counted apart from the per-IP limit, since
    # a chunked upload sends one request per chunk (2 GB in 5 MB chunks: 400 PATCHes).
    upload_requests: int = Field(default=600, ge=1)
    upload_window_seconds: int = Field(default=60, ge=1)
    # Password guessing, per window (see accounts/login_guard.py): tries on one account
    # from one address (a success clears them), tries from one address on any account,
    # and tries on one account from addresses it never logged in from.
    login_attempts: int = Field(default=10, ge=1)
    login_attempts_per_ip: int = Field(default=30, ge=1)
    login_attempts_per_account: int = Field(default=100, ge=1)
    login_window_seconds: int = Field(default=300, ge=1)


class LobbySettings(BaseModel):
    # People waiting at once in one private room's lobby.
    max_size: int = Field(default=20, ge=1, le=1000)
    # Knocks per user per window (a withdrawn or denied knock may be made again).
    knocks: int = Field(default=5, ge=1)
    knock_window_seconds: int = Field(default=300, ge=1)
    # A knock nobody answered within this long no longer counts (the person can knock again).
    knock_ttl_seconds: int = Field(default=3600, ge=60)
    # New knocks on one room from one address per knock_ttl_seconds: throwaway guests
    # from one address cannot fill the lobby (at most this many of them wait at once).
    knocks_per_address: int = Field(default=5, ge=1)


class HttpSettings(BaseModel):
    # Host headers accepted (Starlette's TrustedHostMiddleware: "example.org",
    # "*.example.org"); ["*"] accepts any, for development. Production refuses ["*"]:
    # left so, it takes the host of VIDEOCHAT_PUBLIC_URL, and without one will not start.
    allowed_hosts: list[str] = ["*"]
    # Swagger UI, ReDoc and /openapi.json; unset: served except in production.
    api_docs: bool | None = None
    # Strict-Transport-Security max-age sent in production (unless the public URL is
    # plain http); 0 sends none.
    hsts_seconds: int = Field(default=365 * 24 * 3600, ge=0)
    # Largest request body outside the upload paths (which have their own limits).
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # A request's headers must arrive within this long (slowloris); else 408 and close.
    header_timeout_seconds: float = Field(default=10.0, gt=0, le=300)


class MediaSettings(BaseModel):
    max_upload_bytes: int = Field(default=2 * 1024**3, ge=1024)
    # How long an upload slot (compatible PUT or tus) accepts bytes after it was created.
    upload_slot_ttl_seconds: int = Field(default=24 * 3600, ge=1)
    # HLS segment length; renditions put a keyframe at every segment start.
    segment_seconds: float = Field(default=4.0, ge=0.5, le=30)
    # Videos transcoded at once by the in-process runner (each uses several cores).
    job_concurrency: int = Field(default=1, ge=1, le=16)
    # Tries per video when processing crashes (a rejected file is never retried).
    job_max_attempts: int = Field(default=3, ge=1, le=20)
    job_retry_delay_seconds: float = Field(default=5.0, ge=0)
    # Lifetime of the playback tokens put in private rooms' playback URLs.
    playback_token_ttl_seconds: int = Field(default=6 * 3600, ge=60)
    # With Redis: the queue ``videochat worker`` processes take video jobs from.
    job_queue_name: str = Field(default="videochat-videos", min_length=1, max_length=100)
    # A running job reports it is alive this often; one silent for job_heartbeat_seconds
    # (its worker was killed) is taken back and retried by any other worker.
    job_heartbeat_seconds: int = Field(default=30, ge=2, le=3600)
    # How often workers look for such abandoned jobs.
    job_sweep_seconds: int = Field(default=10, ge=1, le=3600)
    # How often a worker re-queues uploaded videos that have no job (a lost enqueue).
    job_recheck_seconds: float = Field(default=60.0, ge=1, le=86400)
    # What an upload may ask of the server, read from its headers before anything is
    # decoded: a 1 MB file can declare a 16000x16000 picture or hours of 240 fps.
    max_video_side: int = Field(default=4096, ge=16, le=16384)
    max_video_pixels: int = Field(default=4096 * 2160, ge=256)
    max_video_seconds: float = Field(default=3 * 3600, ge=1)
    max_video_frame_rate: float = Field(default=120.0, ge=1, le=1000)
    max_video_streams: int = Field(default=16, ge=1, le=1000)
    # What a transcode may spend: output frame rate cap, threads per decoder/encoder.
    transcode_max_frame_rate: float = Field(default=30.0, ge=1, le=120)
    transcode_threads: int = Field(default=2, ge=1, le=16)
    # Per user: uploads created and not finished, and bytes kept (uploads + videos).
    max_pending_uploads_per_user: int = Field(default=10, ge=1, le=1000)
    max_stored_bytes_per_user: int = Field(default=20 * 1024**3, ge=1024)
    # How often expired, unfinished uploads are removed (their video ends "failed").
    upload_sweep_seconds: float = Field(default=300.0, ge=1, le=86400)


class LiveSettings(BaseModel):
    # Shown as ``rtmp_url`` when an RTMP ingest (outside this service) is configured.
    rtmp_url: str | None = None
    # Live HLS: short segments keep latency down; the live playlist lists the last few.
    segment_seconds: float = Field(default=2.0, ge=0.5, le=10)
    window_segments: int = Field(default=6, ge=2, le=50)
    # A publisher that sends no media for this long is gone: the stream ends.
    publisher_timeout_seconds: float = Field(default=10.0, ge=1, le=300)
    # Output picture: the source's size, scaled down to at most this height.
    max_height: int = Field(default=720, ge=144, le=2160)
    # x264 bitrate for a 720p picture, scaled by pixel count for other sizes.
    video_bitrate: int = Field(default=2_500_000, ge=100_000)
    audio_bitrate: int = Field(default=128_000, ge=32_000)
    # Ingests one instance accepts at once (each costs a fraction of a core).
    max_streams: int = Field(default=8, ge=1, le=200)
    # Of those, held at once by one user (the streams' owner) and by one address, so
    # nobody takes every slot.
    max_streams_per_user: int = Field(default=2, ge=1, le=200)
    max_streams_per_address: int = Field(default=4, ge=1, le=200)
    # A publisher whose ICE/DTLS has not connected this long after its offer is dropped.
    connect_timeout_seconds: float = Field(default=5.0, ge=0.5, le=60)


class BunnySettings(BaseModel):
    api_key: SecretStr | None = None
    library_id: str | None = None
    cdn_hostname: str | None = None
    webhook_secret: SecretStr | None = None
    # Bunny Stream's HTTP API (tests point it at a local stand-in).
    api_base_url: str = "https://video.bunnycdn.com"
    # Per network operation (connect, each read or write), not for a whole upload.
    timeout_seconds: float = Field(default=30.0, gt=0, le=600)

    @property
    def enabled(self) -> bool:
        return bool(self.api_key and self.library_id)


class TurnSettings(BaseModel):
    urls: list[str] = []
    secret: SecretStr | None = None
    ttl_seconds: int = Field(default=3600, ge=60)


class StunSettings(BaseModel):
    urls: list[str] = []


class CallSettings(BaseModel):
    # Every pair in a mesh call exchanges media directly: past a handful it saturates uplinks.
    max_call_size: int = Field(default=6, ge=2, le=50)
    # "relay" forces TURN, for networks that block peer-to-peer traffic.
    ice_transport_policy: Literal["all", "relay"] = "all"
    # A signal's ``data`` (an SDP is a few KiB, a candidate a few hundred bytes).
    max_signal_bytes: int = Field(default=32 * 1024, ge=1024)
    # Signal bytes one socket may send to one peer per window (rate limits on).
    signal_bytes_per_peer: int = Field(default=512 * 1024, ge=1024)
    signal_window_seconds: int = Field(default=10, ge=1)


def _url_list(text: str | None) -> list[str]:
    return [item.strip().rstrip("/") for item in (text or "").split(",") if item.strip()]


class SfuSettings(BaseModel):
    # Janus instances (their HTTP Janus API, as videochat reaches them), comma-separated.
    # Unset: calls stay a peer-to-peer mesh. Set: rooms spread over them.
    janus_url: str | None = None
    # Each instance's admin API, in the same order (never reachable by browsers).
    admin_url: str | None = None
    # What browsers use to reach each instance's Janus API (a proxy path), same order;
    # unset: janus_url.
    public_url: str | None = None
    # Janus's ``admin_secret`` and the VideoRoom plugin's ``admin_key`` (only holders
    # create rooms); both required with janus_url.
    admin_secret: SecretStr | None = None
    room_admin_key: SecretStr | None = None
    # A call with more people than this uses the SFU; 0: every call does.
    threshold: int = Field(default=4, ge=0, le=1000)
    # A grant (a Janus token for one room) lives this long unless renewed.
    grant_ttl_seconds: int = Field(default=300, ge=10, le=86400)
    # Publishers one VideoRoom accepts.
    max_publishers: int = Field(default=50, ge=1, le=1000)
    # Per request to Janus; a failed request is tried again this many times.
    timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    retries: int = Field(default=2, ge=0, le=10)
    # How often expired grants are withdrawn and empty VideoRooms destroyed.
    sweep_seconds: float = Field(default=30.0, ge=0.1, le=3600)
    # Call recording: the folder Janus writes its recordings (.mjr) into, as videochat
    # (and ``videochat worker``) reads it; unset: recording is off. Janus must be able
    # to write there: the same disk, or a shared volume.
    recording_dir: Path | None = None
    # The same folder as Janus sees it (another machine, a container); unset: recording_dir.
    janus_recording_dir: str | None = None
    # A recording stops by itself after this long; only this much of it is kept.
    recording_max_seconds: int = Field(default=4 * 3600, ge=10, le=24 * 3600)
    # A recording whose raw files (every publisher's) pass this size is refused.
    recording_max_bytes: int = Field(default=8 * 1024**3, ge=1024**2)

    @property
    def enabled(self) -> bool:
        return bool(self.janus_urls)

    @property
    def recording_enabled(self) -> bool:
        return self.enabled and self.recording_dir is not None

    @property
    def janus_recording_root(self) -> str:
        """Where Janus writes recordings (its own view of ``recording_dir``)."""
        if self.janus_recording_dir:
            return self.janus_recording_dir.rstrip("/")
        return str(self.recording_dir or "").rstrip("/")

    @property
    def janus_urls(self) -> list[str]:
        return _url_list(self.janus_url)

    @property
    def admin_urls(self) -> list[str]:
        return _url_list(self.admin_url)

    @property
    def public_urls(self) -> list[str]:
        return _url_list(self.public_url) or self.janus_urls

    @model_validator(mode="after")
    def _complete(self) -> SfuSettings:
        count = len(self.janus_urls)
        if not count:
            return self
        if len(self.admin_urls) != count or len(self.public_urls) != count:
            raise ValueError(
                "VIDEOCHAT_SFU__ADMIN_URL (and VIDEOCHAT_SFU__PUBLIC_URL, when set) must list "
                "one URL per Janus instance of VIDEOCHAT_SFU__JANUS_URL, in the same order"
            )
        if self.admin_secret is None or self.room_admin_key is None:
            raise ValueError(
                "VIDEOCHAT_SFU__ADMIN_SECRET and VIDEOCHAT_SFU__ROOM_ADMIN_KEY must be set "
                "with VIDEOCHAT_SFU__JANUS_URL"
            )
        return self


class RealtimeSettings(BaseModel):
    max_frame_bytes: int = Field(default=64 * 1024, ge=1024)
    send_queue_size: int = Field(default=256, ge=8)
    max_message_chars: int = Field(default=4000, ge=1)
    # Protocol-level pings: a peer that does not answer within the timeout is dead
    # (a laptop closed, a network gone) and its socket, presence and tile are dropped.
    ping_interval_seconds: float = Field(default=20.0, gt=0, le=300)
    ping_timeout_seconds: float = Field(default=20.0, gt=0, le=300)
    # Full presence lists go to a room at most once per this window (the latest list at
    # its end); 0 sends one for every join and leave.
    presence_interval_seconds: float = Field(default=0.5, ge=0, le=10)


class Settings(BaseSettings):
    """Everything the service reads from its environment, validated at start-up."""

    model_config = SettingsConfigDict(
        env_prefix="VIDEOCHAT_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
    )

    environment: Environment = Environment.DEVELOPMENT
    app_name: str = "videochat"
    data_dir: Path = Path("./data")
    database_url: str | None = None
    auth_mode: AuthMode = AuthMode.TOKEN
    cors_origins: Annotated[list[str], NoDecode] = []
    log_level: str = "INFO"
    log_json: bool | None = None
    log_file: Path | None = None
    public_url: str | None = None

    jwt: JWTSettings = JWTSettings()
    database: DatabaseSettings = DatabaseSettings()
    redis: RedisSettings = RedisSettings()
    cache: CacheSettings = CacheSettings()
    observability: ObservabilitySettings = ObservabilitySettings()
    rate_limit: RateLimitSettings = RateLimitSettings()
    lobby: LobbySettings = LobbySettings()
    http: HttpSettings = HttpSettings()
    media: MediaSettings = MediaSettings()
    live: LiveSettings = LiveSettings()
    bunny: BunnySettings = BunnySettings()
    turn: TurnSettings = TurnSettings()
    stun: StunSettings = StunSettings()
    realtime: RealtimeSettings = RealtimeSettings()
    calls: CallSettings = CallSettings()
    sfu: SfuSettings = SfuSettings()

    @model_validator(mode="before")
    @classmethod
    def _parse_cors(cls, data: Any) -> Any:
        """Accept the CORS list as JSON (the documented form) or comma-separated."""
        if isinstance(data, dict):
            raw = data.get("cors_origins")
            if isinstance(raw, str):
                import json

                text = raw.strip()
                data["cors_origins"] = (
                    json.loads(text)
                    if text.startswith("[")
                    else [item.strip() for item in text.split(",") if item.strip()]
                )
        return data

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.environment is Environment.PRODUCTION:
            if self.jwt.secret.get_secret_value() == DEFAULT_JWT_SECRET:
                raise ValueError(
                    "VIDEOCHAT_JWT__SECRET must be set to a private value in production"
                )
            if len(self.jwt.secret.get_secret_value()) < 32:
                raise ValueError("VIDEOCHAT_JWT__SECRET must be at least 32 characters")
            if self.auth_mode is AuthMode.OPEN:
                raise ValueError("VIDEOCHAT_AUTH_MODE=open is refused in production")
            if self.http.allowed_hosts == ["*"]:
                host = urlsplit(self.public_url).hostname if self.public_url else None
                if not host:
                    raise ValueError(
                        "VIDEOCHAT_HTTP__ALLOWED_HOSTS (or VIDEOCHAT_PUBLIC_URL) must name "
                        "this service's host in production"
                    )
                self.http = self.http.model_copy(update={"allowed_hosts": [host]})
        return self

    @property
    def resolved_database_url(self) -> str:
        """The SQLAlchemy URL, defaulting to a SQLite file in the data folder."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'videochat.db').resolve()}"

    @property
    def is_production(self) -> bool:
        return self.environment is Environment.PRODUCTION

    @property
    def api_docs(self) -> bool:
        """Whether /docs, /redoc and /openapi.json are served."""
        return self.http.api_docs if self.http.api_docs is not None else not self.is_production

    @property
    def metrics_closed(self) -> bool:
        """Whether metrics need ``observability.metrics_token`` (set, or production)."""
        return self.observability.metrics_token is not None or self.is_production

    @property
    def json_logs(self) -> bool:
        return self.log_json if self.log_json is not None else self.is_production


def with_signing_secret(settings: Settings) -> Settings:
    """The settings, signing with a private secret unless ``test`` runs on the default.

    With no secret set (or the published default), outside ``test`` a random one is
    generated once and kept in the data dir, so tokens survive a restart and nobody can
    forge them with the value printed above. Production must set its own (refused above).
    """
    if (
        settings.environment is Environment.TEST
        or settings.jwt.secret.get_secret_value() != DEFAULT_JWT_SECRET
    ):
        return settings
    secret = SecretStr(_stored_secret(settings.data_dir / SECRET_FILE))
    return settings.model_copy(update={"jwt": settings.jwt.model_copy(update={"secret": secret})})


def _stored_secret(path: Path) -> str:
    """The secret in ``path``; made there first (0600, atomically) when missing."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
        try:
            with os.fdopen(descriptor, "w") as file:  # mkstemp made it 0600
                file.write(secrets.token_urlsafe(48) + "\n")
            # A link fails if it exists: of workers starting together, the first one wins
            # and the others read its secret.
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
        finally:
            os.unlink(temporary)
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        path.chmod(0o600)  # readable by others: the secret would be anybody's
    secret = path.read_text().strip()
    if len(secret) < 32:
        raise ValueError(f"{path} holds no usable signing secret (32+ characters); remove it")
    return secret


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return Settings()
