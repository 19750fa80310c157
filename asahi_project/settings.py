"""Asahi settings: one file, read from the environment through typed helpers (see README, Configuration).

Production differs from development only by environment values. With DATABASE_URL unset, an embedded
PostgreSQL with pgvector is started from the `pgserver` wheel in `.data/pg`. With REDIS_URL unset, the
process runs in single-process mode (in-process cache and channel layer, eager Celery, in-process limits).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from asahi_project.env import (
    ConfigError,
    env_bool,
    env_float,
    env_int,
    env_list,
    env_networks,
    env_str,
    env_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VERSION = "0.1.0"
TESTING = "pytest" in sys.modules or os.environ.get("ASAHI_TESTING") == "1"

DEBUG = env_bool("DJANGO_DEBUG", False)
_DEV_SECRET = "asahi-dev-secret-key-change-me-in-production-0123456789abcdef"
SECRET_KEY = env_str("DJANGO_SECRET_KEY", _DEV_SECRET)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# Fernet key (urlsafe base64, 32 bytes) for provider API keys at rest. The dev default is derived from
# SECRET_KEY so a fresh clone works; a system check warns when production runs without its own key.
ASAHI_ENCRYPTION_KEY = env_str("ASAHI_ENCRYPTION_KEY", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_prometheus",
    "channels",
    "django_htmx",
    "governance",
    "inference",
    "caching",
    "routing",
    "analytics",
    "console",
    "batching",
]

MIDDLEWARE = [
    "asahi_project.middleware.RequestIdMiddleware",
    "asahi_project.middleware.NulGuardMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "asahi_project.urls"
ASGI_APPLICATION = "asahi_project.asgi.application"
WSGI_APPLICATION = "asahi_project.wsgi.application"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------------
DATABASE_URL = env_url("DATABASE_URL", schemes=("postgres", "postgresql"))
if DATABASE_URL:
    _db = urlparse(DATABASE_URL)
    _query = dict(q.split("=", 1) for q in _db.query.split("&") if "=" in q)
    _db_settings = {
        "NAME": unquote(_db.path.lstrip("/")) or "postgres",
        "USER": unquote(_db.username or ""),
        "PASSWORD": unquote(_db.password or ""),
        # ?host=/path selects a Unix socket directory (libpq convention).
        "HOST": unquote(_query.get("host", "")) or unquote(_db.hostname or ""),
        "PORT": str(_db.port or ""),
    }
else:
    from asahi_project.embedded import embedded_postgres_dsn

    _db_settings = embedded_postgres_dsn()

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        **_db_settings,
        "CONN_MAX_AGE": 0 if TESTING else env_int("DB_CONN_MAX_AGE", 60, minimum=0),
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": {"connect_timeout": env_int("DB_CONNECT_TIMEOUT", 5, minimum=1)},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Semantic lookups keep one prepared statement per scope on each connection. A pooler that hands a
# session's statements to other server connections (PgBouncer in transaction mode) needs false:
# each lookup then prepares, runs and deallocates in one transaction.
DB_PREPARED_LOOKUPS = env_bool("DB_PREPARED_LOOKUPS", True)

# --- Redis, cache, channels, Celery ---------------------------------------------------------------
REDIS_URL = env_url("REDIS_URL", schemes=("redis", "rediss", "unix"))
SINGLE_PROCESS = REDIS_URL is None
REDIS_SOCKET_TIMEOUT = env_float("REDIS_SOCKET_TIMEOUT", 0.5, minimum=0.01)

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "asahi",
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                "SOCKET_CONNECT_TIMEOUT": REDIS_SOCKET_TIMEOUT,
                "SOCKET_TIMEOUT": REDIS_SOCKET_TIMEOUT,
            },
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "") or REDIS_URL or "memory://"
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", SINGLE_PROCESS)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# --- Auth, sessions, security ---------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
# Console sessions: cookies are Secure (HTTPS only) unless DEBUG or tests; plain-HTTP local runs
# (./asahi up, docker-compose on :8000) set SESSION_COOKIE_SECURE=false.
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not (DEBUG or TESTING))
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
CSRF_FAILURE_VIEW = "asahi_project.errors.csrf_failure"
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool(
    "TRUST_X_FORWARDED_PROTO", False
) else None
# Client addresses (signup throttle, audit rows) come from the socket. Behind a reverse proxy, name
# it in ASAHI_TRUSTED_PROXIES (or set TRUST_X_FORWARDED_FOR when every peer is the proxy) so the
# address it appends to X-Forwarded-For is used instead; see asahi_project.client_ip.
TRUST_X_FORWARDED_FOR = env_bool("TRUST_X_FORWARDED_FOR", False)
ASAHI_TRUSTED_PROXIES = env_networks("ASAHI_TRUSTED_PROXIES")
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("ASAHI_MAX_BODY_BYTES", 2 * 1024 * 1024, minimum=1024)

# --- Email ----------------------------------------------------------------------------------------
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if os.environ.get("EMAIL_HOST")
    else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10, minimum=1)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Asahi <asahi@localhost>")

# --- i18n, static ---------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# WhiteNoise serves the admin's and Swagger/ReDoc's assets from the app itself: no CDN, no internet.
STORAGES: dict[str, dict[str, Any]] = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = TESTING or DEBUG
# Console and admin logins: failed attempts per username and per client address in a window.
ASAHI_LOGIN_FAILURES_PER_USER = env_int("ASAHI_LOGIN_FAILURES_PER_USER", 5, minimum=1)
ASAHI_LOGIN_FAILURES_PER_IP = env_int("ASAHI_LOGIN_FAILURES_PER_IP", 20, minimum=1)
ASAHI_LOGIN_WINDOW_SECONDS = env_int("ASAHI_LOGIN_WINDOW_SECONDS", 900, minimum=1)
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/dashboard/"
LOGOUT_REDIRECT_URL = "/"

# --- DRF and OpenAPI ------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "governance.auth.ApiKeyAuthentication",
        "governance.auth.StaffSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["asahi_project.drf_input.StrictJSONParser"],
    "EXCEPTION_HANDLER": "asahi_project.errors.drf_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_THROTTLE_RATES": {"signup": env_str("ASAHI_SIGNUP_RATE", "10/hour")},
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Asahi API",
    "DESCRIPTION": "Self-hosted LLM cost optimizer: OpenAI-compatible gateway, cache, routing, governance.",
    "VERSION": VERSION,
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "APPEND_COMPONENTS": {
        "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}}
    },
    "SECURITY": [{"bearerAuth": []}],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "inference.schema.add_gateway_paths",
        "batching.schema.add_batch_paths",
        "inference.schema.document_errors",
    ],
}

# --- Asahi ----------------------------------------------------------------------------------------
ASAHI_DEFAULT_BUDGET_POLICY = env_str("ASAHI_REDIS_FAILURE_MODE", "closed")
if ASAHI_DEFAULT_BUDGET_POLICY not in {"closed", "open"}:
    raise ConfigError("ASAHI_REDIS_FAILURE_MODE must be 'closed' or 'open'")
ASAHI_ADMIN_SECRET = env_str("ASAHI_ADMIN_SECRET", "")
ASAHI_METRICS_SCRAPE_TOKEN = env_str("ASAHI_METRICS_SCRAPE_TOKEN", "")
ASAHI_KEY_CACHE_SECONDS = env_float("ASAHI_KEY_CACHE_SECONDS", 5.0, minimum=0.0)
# How long past its lifetime a cached key check is still used while PostgreSQL is unreachable.
ASAHI_KEY_STALE_SECONDS = env_float("ASAHI_KEY_STALE_SECONDS", 600.0, minimum=0.0)
# Which embedder the semantic cache uses: local (offline, calibrated), openai[:model], cohere[:model].
ASAHI_SEMANTIC_EMBEDDER = env_str("ASAHI_SEMANTIC_EMBEDDER", "local").strip()
if ASAHI_SEMANTIC_EMBEDDER.partition(":")[0] not in {"local", "openai", "cohere"}:
    raise ConfigError("ASAHI_SEMANTIC_EMBEDDER must be local, openai[:model] or cohere[:model]")
# Which prompts the semantic tier serves: "en" (what the shipped embedder and thresholds were
# calibrated on; other languages get the exact tier only) or "all" (a multilingual embedder that
# the operator has calibrated, e.g. with a policy threshold). See caching.semantic.coverage.
ASAHI_SEMANTIC_LANGUAGES = env_str("ASAHI_SEMANTIC_LANGUAGES", "en").strip().lower()
if ASAHI_SEMANTIC_LANGUAGES not in {"en", "all"}:
    raise ConfigError("ASAHI_SEMANTIC_LANGUAGES must be en or all")

# Freeze start-up objects out of the garbage collector's full passes (asahi_project/gc_tuning.py).
ASAHI_GC_FREEZE = env_bool("ASAHI_GC_FREEZE", True)
# Read by caching.semantic.embedders (which also runs without Django); checked here so that a bad
# value stops start-up instead of silently turning the semantic tier off.
env_int("ASAHI_EMBED_THREADS", 0, minimum=0)
env_bool("ASAHI_EMBED_INT8", True)
ASAHI_MAX_PROMPT_CHARS = env_int("ASAHI_MAX_PROMPT_CHARS", 100_000, minimum=1)
ASAHI_UPSTREAM_TIMEOUT = env_float("ASAHI_UPSTREAM_TIMEOUT", 60.0, minimum=0.1)
ASAHI_UPSTREAM_RETRIES = env_int("ASAHI_UPSTREAM_RETRIES", 2, minimum=0)
ASAHI_LEDGER_FLUSH_SECONDS = env_float("ASAHI_LEDGER_FLUSH_SECONDS", 0.5, minimum=0.01)
ASAHI_LEDGER_BATCH = env_int("ASAHI_LEDGER_BATCH", 500, minimum=1)
# Rows (and, separately, audit rows) a process keeps while the database is unreachable; beyond
# it new rows are dropped and counted (asahi_ledger_dropped_total) rather than exhausting memory.
ASAHI_LEDGER_MAX_PENDING = env_int("ASAHI_LEDGER_MAX_PENDING", 100_000, minimum=1)
if ASAHI_LEDGER_MAX_PENDING < ASAHI_LEDGER_BATCH:
    raise ConfigError("ASAHI_LEDGER_MAX_PENDING must be at least ASAHI_LEDGER_BATCH")
# While PostgreSQL is unreachable, ledger rows wait in a spool on local disk (per process, bounded;
# see inference.spool); 0 turns it off (rows then wait in memory only, up to MAX_PENDING).
# Under tests each process gets its own (a test's rows must never be replayed into another test).
ASAHI_LEDGER_SPOOL_DIR = Path(env_str("ASAHI_LEDGER_SPOOL_DIR", "") or (
    Path(tempfile.gettempdir()) / f"asahi-test-ledger-spool-{os.getpid()}" if TESTING
    else Path(os.environ.get("ASAHI_DATA_DIR", BASE_DIR / ".data")) / "ledger-spool"))
ASAHI_LEDGER_SPOOL_MAX_MB = env_int("ASAHI_LEDGER_SPOOL_MAX_MB", 256, minimum=0)
# A budget reservation not settled by then (its process crashed) is released by the next admission
# of the organization. Longer than any request can take (upstream timeout x attempts, streams).
ASAHI_RESERVATION_TTL_SECONDS = env_float("ASAHI_RESERVATION_TTL_SECONDS", 600.0, minimum=1.0)
# Networks that tenant-chosen outbound URLs (alert webhooks) may reach although they are not
# public, e.g. an internal alert receiver: "10.1.2.0/24, 127.0.0.1". Empty: public addresses only.
ASAHI_OUTBOUND_ALLOWED_NETWORKS = env_networks("ASAHI_OUTBOUND_ALLOWED_NETWORKS")
ASAHI_LOG_JSON = env_bool("ASAHI_LOG_JSON", True)

# --- Batching (docs/batching.md) -----------------------------------------------------------------
# Input files: at most this many bytes (413 beyond) and requests (later lines are reported in the
# error file); one line at most ASAHI_BATCH_MAX_LINE_BYTES (reported per line).
ASAHI_BATCH_MAX_FILE_BYTES = env_int("ASAHI_BATCH_MAX_FILE_BYTES", 200 * 1024 * 1024, minimum=1024)
ASAHI_BATCH_MAX_REQUESTS = env_int("ASAHI_BATCH_MAX_REQUESTS", 50_000, minimum=1)
ASAHI_BATCH_MAX_LINE_BYTES = env_int("ASAHI_BATCH_MAX_LINE_BYTES", 1024 * 1024, minimum=256)
# How often beat advances open batches (polls provider batches, resumes interrupted work).
ASAHI_BATCH_POLL_SECONDS = env_float("ASAHI_BATCH_POLL_SECONDS", 10.0, minimum=0.1)
# Items of providers without a batch API, run by workers: at most this many upstream calls at once
# per worker task (low priority: the batch queue, bounded; rate limits apply).
ASAHI_BATCH_FALLBACK_CONCURRENCY = env_int("ASAHI_BATCH_FALLBACK_CONCURRENCY", 4, minimum=1)
# Items per transaction when a worker routes, writes back or finalizes (a killed worker redoes
# at most one chunk).
ASAHI_BATCH_CHUNK = env_int("ASAHI_BATCH_CHUNK", 500, minimum=1)
# Webhooks of deferred /infer requests may target private, loopback or link-local addresses only
# when this is set (local development and tests); otherwise such URLs are refused (SSRF).
ASAHI_WEBHOOK_ALLOW_PRIVATE = env_bool("ASAHI_WEBHOOK_ALLOW_PRIVATE", False)
ASAHI_WEBHOOK_TIMEOUT = env_float("ASAHI_WEBHOOK_TIMEOUT", 10.0, minimum=0.1)
# Batch files go through Django's storage API: local files under the data dir by default, any
# S3-compatible store through django-storages when ASAHI_BATCH_S3_BUCKET is set.
ASAHI_BATCH_S3_BUCKET = env_str("ASAHI_BATCH_S3_BUCKET", "")
if ASAHI_BATCH_S3_BUCKET:
    STORAGES["batches"] = {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {
        "bucket_name": ASAHI_BATCH_S3_BUCKET,
        "endpoint_url": env_str("ASAHI_BATCH_S3_ENDPOINT_URL", "") or None,
        "region_name": env_str("ASAHI_BATCH_S3_REGION", "") or None,
        "location": env_str("ASAHI_BATCH_S3_PREFIX", "batches"),
    }}
else:
    STORAGES["batches"] = {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {
        "location": os.path.join(os.environ.get("ASAHI_DATA_DIR") or str(BASE_DIR / ".data"),
                                 "batches"),
    }}
CELERY_TASK_ROUTES = {"batching.*": {"queue": "batch"}}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "asahi_project.logging.JsonFormatter"},
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if ASAHI_LOG_JSON else "plain",
        }
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.request": {"level": "ERROR"},
        "asahi.request": {"level": "WARNING" if TESTING else "INFO"},
        "pgserver": {"level": "WARNING"},
    },
}
