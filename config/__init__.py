"""Configuration classes, every value read from the environment with development-only defaults."""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
INSTANCE_DIR = Path(os.environ.get("INSTANCE_PATH", PROJECT_ROOT / "instance"))
DEFAULT_SQLITE_PATH = INSTANCE_DIR / "grid.sqlite"


# The photo stores app/services/field/storage.py implements (tests/test_storage.py keeps the two lists equal).
BLOB_STORES = ("local", "s3")
S3_ADDRESSING_STYLES = ("path", "virtual", "auto")
# S3's rules for a bucket name: 3 to 63 lowercase letters, digits, dots and hyphens, a letter or digit at each end.
_S3_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


DEFAULT_AUTH_RATE_LIMIT = "60 per minute;600 per hour"
DEFAULT_LOGIN_ACCOUNT_RATE_LIMIT = "5 per minute;20 per hour"


class ConfigError(RuntimeError):
    """Raised when the environment does not allow the service to start safely."""


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc


def _dev_jwt_secret() -> str:
    """A per-checkout random secret, so development needs no secret in the repo yet all workers agree."""
    path = INSTANCE_DIR / ".jwt-dev-secret"
    if not path.exists():
        INSTANCE_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def normalise_database_url(url: str) -> str:
    # Operators paste libpq-style URLs; SQLAlchemy needs the driver named for psycopg 3.
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


class BaseConfig:
    ENV_NAME = "base"
    TESTING = False

    def __init__(self) -> None:
        self.SQLALCHEMY_DATABASE_URI = normalise_database_url(
            os.environ.get("DATABASE_URL") or f"sqlite:///{DEFAULT_SQLITE_PATH}"
        )
        self.JWT_SECRET = os.environ.get("JWT_SECRET", "")
        self.JWT_ISSUER = os.environ.get("JWT_ISSUER", "grid-backend")
        self.JWT_AUDIENCE = os.environ.get("JWT_AUDIENCE", "grid-api")
        self.ACCESS_TOKEN_TTL_S = _int_env("ACCESS_TOKEN_TTL_S", 15 * 60)
        self.REFRESH_TOKEN_TTL_S = _int_env("REFRESH_TOKEN_TTL_S", 30 * 24 * 3600)
        # A refresh token repeated within this many seconds of its exchange gets that exchange's pair again
        # (two tabs, a retry after a lost answer); later it counts as a leak and revokes the login. 0: off.
        self.REFRESH_REUSE_GRACE_S = _int_env("REFRESH_REUSE_GRACE_S", 10)
        self.ROUTING_MAX_DISTANCE_M = _int_env("ROUTING_MAX_DISTANCE_M", 200)
        self.TIMEZONE = os.environ.get("TIMEZONE", "Asia/Shanghai")
        # The work calendar's weekly hours in TIMEZONE: "<days> <from-to>,<from-to>" groups joined by ";",
        # e.g. "mon-fri 09:00-12:00,13:30-17:30; sat 09:00-12:00". Holidays and make-up days come from the
        # calendar_days table; working_days limits count the most common day's length as one working day.
        self.WORK_HOURS = os.environ.get("WORK_HOURS", "mon-fri 09:00-12:00,13:30-17:30")
        # Accounts' phone numbers must match this whole (mainland China mobile numbers by default).
        self.PHONE_PATTERN = os.environ.get("PHONE_PATTERN", r"1[3-9]\d{9}")
        self.PHONE_ERROR = os.environ.get(
            "PHONE_ERROR",
            "Must be a mainland China mobile number (11 digits starting with 1)."
            if "PHONE_PATTERN" not in os.environ
            else f"Must match {self.PHONE_PATTERN}.",
        )
        self.MAX_CONTENT_LENGTH = _int_env("MAX_BODY_BYTES", 1024 * 1024)
        self.GRID_IMPORT_MAX_BYTES = _int_env("GRID_IMPORT_MAX_BYTES", 64 * 1024 * 1024)
        self.SPATIALITE_LIBRARY_PATH = os.environ.get("SPATIALITE_LIBRARY_PATH", "mod_spatialite")
        self.SQLITE_BUSY_TIMEOUT_MS = _int_env("SQLITE_BUSY_TIMEOUT_MS", 10_000)
        # Argon2id cost; the defaults follow argon2-cffi's RFC 9106 "low memory" profile.
        self.PASSWORD_TIME_COST = _int_env("PASSWORD_TIME_COST", 3)
        self.PASSWORD_MEMORY_KIB = _int_env("PASSWORD_MEMORY_KIB", 64 * 1024)
        self.DEMO_PASSWORD = os.environ.get("DEMO_PASSWORD", "")
        # Counters live in Redis when REDIS_URL is set, so every worker and host shares them.
        self.REDIS_URL = os.environ.get("REDIS_URL", "")
        self.RATELIMIT_STORAGE_URI = self.REDIS_URL or "memory://"
        self.RATELIMIT_HEADERS_ENABLED = True
        # Redis down: each process counts in its own memory until Redis answers again (checked with back-off), so
        # sign-ins are still throttled (per process) and reports keep being filed; an error left over is logged
        # and the request served, never a 500 for a counter.
        self.RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
        self.RATELIMIT_SWALLOW_ERRORS = True
        self.RATELIMIT_ENABLED = os.environ.get("RATELIMIT_ENABLED", "1") not in ("0", "false", "no")
        # Per client address, every sign-up, sign-in and refresh: a street office behind one NAT address signs
        # its shift of 30 or more in within a minute.
        self.AUTH_RATE_LIMIT = os.environ.get("AUTH_RATE_LIMIT", DEFAULT_AUTH_RATE_LIMIT)
        # Per account, failed sign-ins only (from any address): slows guessing one password to 20 tries an hour.
        self.LOGIN_ACCOUNT_RATE_LIMIT = os.environ.get("LOGIN_ACCOUNT_RATE_LIMIT", DEFAULT_LOGIN_ACCOUNT_RATE_LIMIT)
        # Open311: reports one API key may file, and what discovery tells clients.
        self.OPEN311_RATE_LIMIT = os.environ.get("OPEN311_RATE_LIMIT", "60 per minute;1000 per day")
        self.OPEN311_CONTACT = os.environ.get("OPEN311_CONTACT", "12345 city service hotline")
        self.OPEN311_KEY_SERVICE = os.environ.get(
            "OPEN311_KEY_SERVICE", "Ask the city's administrators for an API key."
        )
        # Hops of reverse proxies whose X-Forwarded-For may be trusted for the client address.
        self.TRUSTED_PROXIES = _int_env("TRUSTED_PROXIES", 0)
        self.LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")
        # json: one JSON object per line (production, a log shipper reads it); text: for a person at a terminal.
        default_format = "json" if self.ENV_NAME == "production" else "text"
        self.LOG_FORMAT = (os.environ.get("LOG_FORMAT") or default_format).strip().lower()
        # GET /metrics answers only `Authorization: Bearer <METRICS_TOKEN>`; unset, /metrics is 404.
        self.METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
        # How long a stored response answers retries that carry the same Idempotency-Key.
        self.IDEMPOTENCY_TTL_S = _int_env("IDEMPOTENCY_TTL_S", 24 * 3600)
        # A patrol point stamped further ahead of the server's clock than this is refused as impossible.
        self.PATROL_MAX_CLOCK_SKEW_S = _int_env("PATROL_MAX_CLOCK_SKEW_S", 300)
        # Photos on reports: where their bytes go (local: files under UPLOAD_DIR) and how large one may be.
        self.BLOB_STORE = os.environ.get("BLOB_STORE", "local")
        self.UPLOAD_DIR = os.environ.get("UPLOAD_DIR", str(INSTANCE_DIR / "uploads"))
        self.ATTACHMENT_MAX_BYTES = _int_env("ATTACHMENT_MAX_BYTES", 10 * 1024 * 1024)
        # BLOB_STORE=s3: objects <S3_PREFIX><sha256> in S3_BUCKET of an S3-compatible store. S3_ENDPOINT_URL
        # names a store other than AWS (MinIO, Ceph...). Credentials: S3_ACCESS_KEY_ID/S3_SECRET_ACCESS_KEY
        # when set (keys for this bucket only), else boto3's own chain (AWS_ACCESS_KEY_ID..., profiles, roles).
        self.S3_BUCKET = os.environ.get("S3_BUCKET", "")
        self.S3_PREFIX = os.environ.get("S3_PREFIX", "")
        self.S3_ENDPOINT_URL = os.environ.get("S3_ENDPOINT_URL", "")
        self.S3_REGION = os.environ.get("S3_REGION", "")
        self.S3_ACCESS_KEY_ID = os.environ.get("S3_ACCESS_KEY_ID", "")
        self.S3_SECRET_ACCESS_KEY = os.environ.get("S3_SECRET_ACCESS_KEY", "")
        # Path style works with every S3-compatible store; AWS buckets with dots in the name need it too.
        self.S3_ADDRESSING_STYLE = os.environ.get("S3_ADDRESSING_STYLE", "path")
        # A store that is down costs a request at most about S3_MAX_ATTEMPTS x the timeout before its 503.
        self.S3_CONNECT_TIMEOUT_S = _int_env("S3_CONNECT_TIMEOUT_S", 3)
        self.S3_READ_TIMEOUT_S = _int_env("S3_READ_TIMEOUT_S", 20)
        self.S3_MAX_ATTEMPTS = _int_env("S3_MAX_ATTEMPTS", 2)

        # A database error's text would carry the statement's parameters (phones, hashes, tokens' ids) into logs.
        self.SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True, "hide_parameters": True}
        self.API_TITLE = "Grid governance API"
        self.API_VERSION = "v1"
        self.OPENAPI_VERSION = "3.1.0"
        self.OPENAPI_URL_PREFIX = "/api/v1"
        self.OPENAPI_JSON_PATH = "openapi.json"
        # The docs page is app/api/docs.py's (flask-smorest's own page has inline script); Swagger UI's files
        # come from here, bundled, unless SWAGGER_UI_URL names another place.
        self.SWAGGER_UI_URL = os.environ.get("SWAGGER_UI_URL", "/api/v1/docs/assets/")
        # The console's base map (/console/): an XYZ tile URL template ({s}, {z}, {x}, {y}) and its attribution;
        # empty: no tiles, the cells and cases on a plain background (offline). Chinese tile services draw in
        # GCJ-02 (CONSOLE_TILE_CRS=gcj02): the console then asks the API for GCJ-02 coordinates so they line up.
        self.CONSOLE_TILE_URL = os.environ.get("CONSOLE_TILE_URL", "")
        self.CONSOLE_TILE_ATTRIBUTION = os.environ.get("CONSOLE_TILE_ATTRIBUTION", "")
        self.CONSOLE_TILE_CRS = os.environ.get("CONSOLE_TILE_CRS", "wgs84")
        self.JSON_SORT_KEYS = False
        self.validate()

    def validate(self) -> None:
        if self.ROUTING_MAX_DISTANCE_M < 0:
            raise ConfigError("ROUTING_MAX_DISTANCE_M must not be negative")
        if not 0 <= self.REFRESH_REUSE_GRACE_S <= 60:
            # Longer would let a stolen refresh token be exchanged unnoticed well after its owner's exchange.
            raise ConfigError("REFRESH_REUSE_GRACE_S must be 0 (off) to 60 seconds")
        if self.IDEMPOTENCY_TTL_S < 1:
            raise ConfigError("IDEMPOTENCY_TTL_S must be at least 1 second")
        if self.PATROL_MAX_CLOCK_SKEW_S < 0:
            raise ConfigError("PATROL_MAX_CLOCK_SKEW_S must not be negative")
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        from app.lib.hours import parse_week

        try:
            ZoneInfo(self.TIMEZONE)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigError(
                f"TIMEZONE must be an IANA time zone such as Asia/Shanghai, got {self.TIMEZONE!r}"
            ) from exc
        try:
            re.compile(self.PHONE_PATTERN)
        except re.error as exc:
            raise ConfigError(f"PHONE_PATTERN is not a regular expression ({exc}): {self.PHONE_PATTERN!r}") from exc
        try:
            parse_week(self.WORK_HOURS)
        except ValueError as exc:
            raise ConfigError(f"WORK_HOURS is not valid ({exc}): {self.WORK_HOURS!r}") from exc
        from limits import parse_many

        for name in ("AUTH_RATE_LIMIT", "LOGIN_ACCOUNT_RATE_LIMIT", "OPEN311_RATE_LIMIT"):
            try:
                parse_many(getattr(self, name))
            except ValueError as exc:
                raise ConfigError(
                    f"{name} must be limits such as '5 per minute;20 per hour', got {getattr(self, name)!r}"
                ) from exc
        if self.BLOB_STORE not in BLOB_STORES:
            raise ConfigError(f"BLOB_STORE must be one of {sorted(BLOB_STORES)}, got {self.BLOB_STORE!r}")
        if self.ATTACHMENT_MAX_BYTES < 1:
            raise ConfigError("ATTACHMENT_MAX_BYTES must be positive")
        if self.CONSOLE_TILE_CRS not in ("wgs84", "gcj02"):
            raise ConfigError(f"CONSOLE_TILE_CRS must be wgs84 or gcj02, got {self.CONSOLE_TILE_CRS!r}")
        if self.CONSOLE_TILE_URL and not re.match(r"^https?://[^/?#\s]+/\S*$", self.CONSOLE_TILE_URL):
            raise ConfigError(f"CONSOLE_TILE_URL must be an http(s):// URL template, got {self.CONSOLE_TILE_URL!r}")
        if self.LOG_FORMAT not in ("json", "text"):
            raise ConfigError(f"LOG_FORMAT must be json or text, got {self.LOG_FORMAT!r}")
        if self.METRICS_TOKEN and len(self.METRICS_TOKEN) < 16:
            # A short token can be guessed, and the metrics name every route and its traffic.
            raise ConfigError("METRICS_TOKEN must be at least 16 characters (or unset: no /metrics)")
        if self.BLOB_STORE == "s3":
            self._validate_s3()

    def _validate_s3(self) -> None:
        if not _S3_BUCKET.match(self.S3_BUCKET) or ".." in self.S3_BUCKET:
            raise ConfigError(f"BLOB_STORE=s3 needs S3_BUCKET, a valid bucket name, got {self.S3_BUCKET!r}")
        if self.S3_ENDPOINT_URL and not re.match(r"^https?://[^/?#\s]+(/[^?#\s]*)?$", self.S3_ENDPOINT_URL):
            raise ConfigError(f"S3_ENDPOINT_URL must be an http(s)://host[:port] URL, got {self.S3_ENDPOINT_URL!r}")
        if bool(self.S3_ACCESS_KEY_ID) != bool(self.S3_SECRET_ACCESS_KEY):
            raise ConfigError("Set both S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY, or neither (boto3's own chain)")
        if self.S3_ADDRESSING_STYLE not in S3_ADDRESSING_STYLES:
            raise ConfigError(
                f"S3_ADDRESSING_STYLE must be one of {list(S3_ADDRESSING_STYLES)}, got {self.S3_ADDRESSING_STYLE!r}"
            )
        if self.S3_PREFIX.startswith("/"):
            raise ConfigError(f"S3_PREFIX must not start with '/', got {self.S3_PREFIX!r}")
        for name in ("S3_CONNECT_TIMEOUT_S", "S3_READ_TIMEOUT_S", "S3_MAX_ATTEMPTS"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")


class DevelopmentConfig(BaseConfig):
    ENV_NAME = "development"

    def __init__(self) -> None:
        super().__init__()
        if not self.JWT_SECRET:
            self.JWT_SECRET = _dev_jwt_secret()
        if not self.DEMO_PASSWORD:
            self.DEMO_PASSWORD = "grid-demo-2026"


class TestingConfig(BaseConfig):
    ENV_NAME = "testing"
    TESTING = True

    def __init__(self) -> None:
        super().__init__()
        self.SQLALCHEMY_DATABASE_URI = normalise_database_url(
            os.environ.get("TEST_DATABASE_URL") or self.SQLALCHEMY_DATABASE_URI
        )
        self.JWT_SECRET = self.JWT_SECRET or "test-only-secret-not-for-production-use-0123456789"
        # Cheap hashes keep the suite fast; production uses the full cost above.
        self.PASSWORD_TIME_COST = 1
        self.PASSWORD_MEMORY_KIB = 1024
        self.DEMO_PASSWORD = self.DEMO_PASSWORD or "grid-demo-2026"
        self.RATELIMIT_STORAGE_URI = "memory://"
        # Tests log in far more often than people do; the rate-limit test lowers this itself.
        self.AUTH_RATE_LIMIT = "100000 per minute"
        self.LOGIN_ACCOUNT_RATE_LIMIT = "100000 per minute"
        self.OPEN311_RATE_LIMIT = "100000 per minute"


class ProductionConfig(BaseConfig):
    ENV_NAME = "production"

    def validate(self) -> None:
        super().validate()
        if len(self.JWT_SECRET) < 32:
            raise ConfigError("JWT_SECRET must be set to at least 32 characters in production")
        if "DATABASE_URL" not in os.environ:
            raise ConfigError("DATABASE_URL must be set in production")


CONFIGS = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


def load_config(name: str | None = None) -> BaseConfig:
    env_name = name or os.environ.get("APP_ENV", "development")
    try:
        return CONFIGS[env_name]()
    except KeyError as exc:
        raise ConfigError(f"APP_ENV must be one of {sorted(CONFIGS)}, got {env_name!r}") from exc
