"""Site configuration. Every value that may change between machines comes from the environment through the
strict helpers in :mod:`config.env`; with no environment at all the site runs embedded (SQLite, tasks in
process, local-memory cache, media on disk)."""

from __future__ import annotations

from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_choice, env_float, env_header_value, env_int, env_list, env_rate, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("ARENA_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)  # the embedded SQLite file, media and tiny models live here

DEBUG = env_bool("DEBUG", False)
# Production: HTTPS only (redirect, HSTS, secure cookies), a real secret key and host names; `check --deploy` is clean.
ARENA_PRODUCTION = env_bool("ARENA_PRODUCTION", False)
_DEV_SECRET = "dev-only-insecure-secret-key-change-me-0123456789abcdefghijklmnop"
SECRET_KEY = env_str("SECRET_KEY", _DEV_SECRET)
if ARENA_PRODUCTION:
    if SECRET_KEY == _DEV_SECRET:
        raise ImproperlyConfigured("SECRET_KEY must be set when ARENA_PRODUCTION=1")
    if DEBUG:
        raise ImproperlyConfigured("DEBUG=1 cannot be used with ARENA_PRODUCTION=1 (it shows settings and code to visitors)")
    if not env_list("ALLOWED_HOSTS", []):
        raise ImproperlyConfigured("ALLOWED_HOSTS must name the site's host(s) when ARENA_PRODUCTION=1")
# Salt for hashing voter ids in exports; separate from SECRET_KEY so it can be rotated on its own.
VOTER_HASH_SALT = env_str("VOTER_HASH_SALT", SECRET_KEY)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# --- HTTPS (on with ARENA_PRODUCTION; each switch can be set on its own) -----------------------------------------------
# Behind a TLS-terminating proxy, name the header it sets on HTTPS requests, e.g. HTTP_X_FORWARDED_PROTO=https (the
# proxy must overwrite it on every request); without it Django sees plain HTTP and the redirect below would loop.
SECURE_PROXY_SSL_HEADER = env_header_value("SECURE_PROXY_SSL_HEADER")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", ARENA_PRODUCTION)  # off where the proxy redirects to HTTPS itself
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 24 * 3600 if ARENA_PRODUCTION else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", ARENA_PRODUCTION)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", ARENA_PRODUCTION)
SILENCED_SYSTEM_CHECKS: list[str] = []
if ARENA_PRODUCTION and not SECURE_SSL_REDIRECT and SECURE_PROXY_SSL_HEADER:
    # The TLS proxy redirects plain HTTP itself (that is what turning the redirect off behind it means).
    SILENCED_SYSTEM_CHECKS.append("security.W008")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "django_celery_beat",
    "generation",
    "generation.scoring",
    "arena",
    "training",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",  # static files from runserver (DEBUG off) and gunicorn alike
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "config.middleware.ServiceUnavailableMiddleware",  # a database that is down is a 503 with a clear message
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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
            "string_if_invalid": "",
        },
    }
]

# --- database -------------------------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'arena.sqlite3'}")
try:
    _db = dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60, minimum=0))
except Exception as exc:  # dj_database_url raises several types for unknown schemes
    raise ImproperlyConfigured(f"DATABASE_URL={DATABASE_URL!r} is not a usable database URL: {exc}") from None
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and a busy timeout let the embedded site take concurrent writes without "database is locked". Connections
    # persist as PostgreSQL's do (DB_CONN_MAX_AGE): closing one after each request reopened the file, ran the
    # PRAGMAs again and checkpointed the WAL, every request.
    _db.setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL;"}
    )
# A persistent connection broken by a database restart is noticed and replaced at the start of the next request
# (on PostgreSQL by looking at its socket, not by a SELECT 1 each request: config/postgresql/base.py).
_db["CONN_HEALTH_CHECKS"] = True
if _db["ENGINE"] == "django.db.backends.postgresql":
    _db["ENGINE"] = "config.postgresql"
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- cache, sessions, rate limits ---------------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL", "")
if REDIS_URL:
    # A Redis that hangs (frozen, a dropped network) fails each cache call after this many seconds instead of holding
    # the request: the rate limits then fail open as when it is down (RATELIMIT_FAIL_OPEN).
    _redis_timeout = env_float("REDIS_SOCKET_TIMEOUT", 1.0, minimum=0.05)
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL,
                          "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "arena"),
                          "OPTIONS": {"socket_connect_timeout": _redis_timeout, "socket_timeout": _redis_timeout}}}
elif env_str("ARENA_CACHE_DIR", ""):
    # `manage.py serve`: the web server and the worker share a cache on disk (progress, rate limits, boards); a
    # local-memory cache would be one per process.
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
                          "LOCATION": env_str("ARENA_CACHE_DIR", ""), "OPTIONS": {"MAX_ENTRIES": 5000}}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "arena"}}
# Voters are identified by a random token kept in a signed cookie: no server-side session row per voter,
# and the same identity is seen by every web process.
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 60 * 60 * 24 * 365, minimum=60)
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", ARENA_PRODUCTION)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

RATELIMIT_ENABLE = env_bool("RATELIMIT_ENABLE", True)
# When the cache (Redis) is unreachable, requests are let through rather than refused: voting goes on and the
# limits apply again once the cache is back.
RATELIMIT_FAIL_OPEN = True
# Each limit counts per voter (the cookie) and per client address, so a client that drops its cookie is still
# counted by its address. Rates are django-ratelimit's "N/s|m|h|d".
RATELIMIT_VOTER = env_rate("RATELIMIT_VOTER", "60/m")  # polls issued + votes, per voter (each counted on its own)
RATELIMIT_IP = env_rate("RATELIMIT_IP", "600/m")  # polls issued + votes, per client address (several voters behind one NAT)
RATELIMIT_FREE_PROMPT = env_rate("RATELIMIT_FREE_PROMPT", "10/m")  # live generations per voter
RATELIMIT_FREE_PROMPT_IP = env_rate("RATELIMIT_FREE_PROMPT_IP", "30/m")  # live generations per client address
# Behind a proxy, set to the header that carries the client address (e.g. HTTP_X_FORWARDED_FOR) and say how many
# proxies of yours append to it: the address is read that many entries from the right, since everything to its left
# came from the client and can be forged.
CLIENT_IP_HEADER = env_str("CLIENT_IP_HEADER", "REMOTE_ADDR")
CLIENT_IP_TRUSTED_PROXIES = env_int("CLIENT_IP_TRUSTED_PROXIES", 1, minimum=1, maximum=10)

# --- the arena ----------------------------------------------------------------------------------------------
POLL_TTL_SECONDS = env_int("POLL_TTL_SECONDS", 15 * 60, minimum=10)
MIN_VOTE_SECONDS = env_float("MIN_VOTE_SECONDS", 1.0, minimum=0.0)
COUNT_FAST_VOTES = env_bool("COUNT_FAST_VOTES", False)
# Who applies votes to the ratings: "task" (each vote's commit queues the arena.apply_ratings task; in process
# when tasks run eagerly) or "external" (a separate `manage.py apply_ratings --follow` process does).
RATINGS_CONSUMER = env_choice("RATINGS_CONSUMER", "task", ("task", "external"))
# Vote hygiene (the stats page): per-voter tests, Benjamini–Hochberg corrected at this false-discovery rate, run for
# voters with at least this many votes of a kind.
HYGIENE_FDR = env_float("HYGIENE_FDR", 0.05, minimum=0.0001, maximum=0.5)
HYGIENE_MIN_VOTES = env_int("HYGIENE_MIN_VOTES", 20, minimum=5)
VOTER_DAILY_CAP = env_int("VOTER_DAILY_CAP", 0, minimum=0)  # votes one voter may cast per UTC day (0: no cap)
FREE_DUEL_ALLOW_TIE = env_bool("FREE_DUEL_ALLOW_TIE", True)
FREE_DUEL_ALLOW_BOTH_BAD = env_bool("FREE_DUEL_ALLOW_BOTH_BAD", True)
FREE_PROMPT_MAX_CHARS = env_int("FREE_PROMPT_MAX_CHARS", 1000, minimum=10)
FREE_PROMPT_BLOCKLIST = env_list("FREE_PROMPT_BLOCKLIST", [])
FREE_PROMPT_NEGATIVE = env_str("FREE_PROMPT_NEGATIVE", "worst quality, low quality, lowres, bad anatomy")
FREE_PROMPT_RATING_TOKEN = env_str("FREE_PROMPT_RATING_TOKEN", "general")
FREE_PROMPT_TIMEOUT_SECONDS = env_int("FREE_PROMPT_TIMEOUT_SECONDS", 300, minimum=5)
# Size of free-prompt duel images when the two models' defaults differ (both images always share one size).
FREE_PROMPT_WIDTH = env_int("FREE_PROMPT_WIDTH", 832, minimum=256, maximum=2048)
FREE_PROMPT_HEIGHT = env_int("FREE_PROMPT_HEIGHT", 1216, minimum=256, maximum=2048)
# "info": a uniform share mixed with sampling in proportion to the expected information about pairs' order (the
# randomised design of ratings/design.py, with the probability of each poll stored); "uniform": every feasible set
# equally likely (admins' weights apply to both).
MATCHMAKING_STRATEGY = env_choice("MATCHMAKING_STRATEGY", "info", ("info", "uniform"))

ELO_K = env_float("ELO_K", 4.0, minimum=0.0)
ELO_SCALE = env_float("ELO_SCALE", 400.0, minimum=1.0)
ELO_BASE = env_float("ELO_BASE", 10.0, minimum=1.0001)
ELO_INITIAL = env_float("ELO_INITIAL", 1000.0)
TRUESKILL_MU = env_float("TRUESKILL_MU", 25.0)
TRUESKILL_SIGMA = env_float("TRUESKILL_SIGMA", 25.0 / 3.0, minimum=1e-6)
TRUESKILL_BETA = env_float("TRUESKILL_BETA", 25.0 / 6.0, minimum=1e-6)
TRUESKILL_TAU = env_float("TRUESKILL_TAU", 25.0 / 300.0, minimum=0.0)
TRUESKILL_DRAW_PROBABILITY = env_float("TRUESKILL_DRAW_PROBABILITY", 0.10, minimum=0.0, maximum=0.999)
BT_BOOTSTRAP_ROUNDS = env_int("BT_BOOTSTRAP_ROUNDS", 100, minimum=0)
BT_BOOTSTRAP_SEED = env_int("BT_BOOTSTRAP_SEED", 0)

LEADERBOARD_REFRESH_SECONDS = env_float("LEADERBOARD_REFRESH_SECONDS", 30.0, minimum=0.0)  # stored boards recompute at most this often
LEADERBOARD_SNAPSHOTS_KEPT = env_int("LEADERBOARD_SNAPSHOTS_KEPT", 100, minimum=1)
# The battle log (Chatbot Arena's clean-battle format, voters as salted hashes) for leaderboard readers.
ARENA_PUBLIC_VOTE_LOG = env_bool("ARENA_PUBLIC_VOTE_LOG", True)

# --- generation -------------------------------------------------------------------------------------------
MODELS_DIR = Path(env_str("ARENA_MODELS_DIR", str(VAR_DIR / "models")))
# The pre-trained tiny models (generation.tiny; content-keyed, built once in minutes): the demo, the tests and the
# training benchmarks share one build.
TINY_MODELS_DIR = Path(env_str("ARENA_TINY_MODELS_DIR", str(VAR_DIR / "cache" / "tiny-models")))
# The same models with seeded random weights (seconds to build): the demo's first run uses them while the pre-trained
# ones are built in the background (generation.services.demo), which then replace them.
TINY_RANDOM_MODELS_DIR = Path(env_str("ARENA_TINY_RANDOM_MODELS_DIR", f"{TINY_MODELS_DIR}-random"))
PIPELINE_CACHE_SIZE = env_int("PIPELINE_CACHE_SIZE", 2, minimum=1)
GENERATION_BATCH_SIZE = env_int("GENERATION_BATCH_SIZE", 4, minimum=1)
GENERATION_DEVICE = env_str("GENERATION_DEVICE", "auto")  # auto | cpu | cuda | cuda:N
GENERATION_TASK_SOFT_TIME_LIMIT = env_int("GENERATION_TASK_SOFT_TIME_LIMIT", 15 * 60, minimum=10)
GENERATION_TASK_TIME_LIMIT = env_int("GENERATION_TASK_TIME_LIMIT", GENERATION_TASK_SOFT_TIME_LIMIT + 60, minimum=11)
SCORING_DEVICE = env_str("SCORING_DEVICE", GENERATION_DEVICE)
SCORING_SOFT_TIME_LIMIT = env_int("SCORING_SOFT_TIME_LIMIT", 30 * 60, minimum=10)
SCORERS_DIR = Path(env_str("ARENA_SCORERS_DIR", str(VAR_DIR / "scorers")))
SCORING_BATCH_SIZE = env_int("SCORING_BATCH_SIZE", 16, minimum=1)  # images per scoring task / transaction
CHARACTER_ELO_K = env_float("CHARACTER_ELO_K", 4.0, minimum=0.0)  # K of the automatic CCIP duels
CHARACTER_ELO_TIE_MARGIN = env_float("CHARACTER_ELO_TIE_MARGIN", 0.01, minimum=0.0)  # CCIP difference gap that ties

# --- tasks ----------------------------------------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL or "memory://")
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", "") or None
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", not REDIS_URL and CELERY_BROKER_URL == "memory://")
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 60 * 60, minimum=1)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 60 * 60 + 120, minimum=1)
# Longer than the longest task, so Redis never redelivers a task that is still running.
CELERY_VISIBILITY_TIMEOUT = env_int("CELERY_VISIBILITY_TIMEOUT", 6 * 60 * 60, minimum=60)
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT}
if CELERY_BROKER_URL.startswith("filesystem://"):
    # kombu's filesystem transport (`manage.py serve`, the embedded default): messages are files under var/queue,
    # so the web server and a local worker share a real queue with no broker server. (It has no visibility
    # timeout: a message is taken off the queue when a worker reads it.)
    QUEUE_DIR = Path(env_str("ARENA_QUEUE_DIR", str(VAR_DIR / "queue")))
    for _folder in ("in", "processed", "control"):
        (QUEUE_DIR / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(QUEUE_DIR / "in"), "data_folder_out": str(QUEUE_DIR / "in"),
        "processed_folder": str(QUEUE_DIR / "processed"), "control_folder": str(QUEUE_DIR / "control"),
        "store_processed": False, "polling_interval": env_float("CELERY_POLLING_INTERVAL", 0.25, minimum=0.01),
    }
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# A safety net under the per-vote trigger (a vote whose trigger was lost while Redis was down is applied here).
CELERY_BEAT_SCHEDULE = {"arena-apply-ratings": {"task": "arena.apply_ratings", "schedule": 30.0}}
# Generation tasks whose job was made while the broker was unreachable are sent when it is back, on this period.
GENERATION_REQUEUE_SECONDS = env_float("GENERATION_REQUEUE_SECONDS", 30.0, minimum=0.5)
CELERY_BEAT_SCHEDULE["generation-requeue-unsent"] = {
    "task": "generation.requeue_unsent", "schedule": GENERATION_REQUEUE_SECONDS, "options": {"queue": "default"}}
CELERY_TIMEZONE = "UTC"

# --- training ---------------------------------------------------------------------------------------------
TRAINING_DIR = Path(env_str("ARENA_TRAINING_DIR", str(VAR_DIR / "training")))  # datasets, runs' checkpoints and outputs
# How a run's `manage.py train RUN_ID` is started: "inprocess" (in the train worker's own process) or "accelerate"
# (`accelerate launch --num_processes TRAIN_NUM_PROCESSES manage.py train RUN_ID`, see README "Running at scale").
TRAIN_LAUNCHER = env_choice("TRAIN_LAUNCHER", "inprocess", ("inprocess", "accelerate"))
TRAIN_NUM_PROCESSES = env_int("TRAIN_NUM_PROCESSES", 1, minimum=1, maximum=1024)
TRAIN_ACCELERATE_ARGS = env_list("TRAIN_ACCELERATE_ARGS", [])  # more `accelerate launch` flags, comma-separated
# A run trains in slices of at most this many seconds, saving a checkpoint and re-enqueueing itself, so no message
# is held longer than the broker's visibility timeout; the task's time limit is the slice plus the grace.
TRAIN_TIME_SLICE_SECONDS = env_int("TRAIN_TIME_SLICE_SECONDS", 30 * 60, minimum=10)
TRAIN_SLICE_GRACE_SECONDS = env_int("TRAIN_SLICE_GRACE_SECONDS", 15 * 60, minimum=10)
if TRAIN_TIME_SLICE_SECONDS + TRAIN_SLICE_GRACE_SECONDS >= CELERY_VISIBILITY_TIMEOUT:
    raise ImproperlyConfigured(
        f"TRAIN_TIME_SLICE_SECONDS + TRAIN_SLICE_GRACE_SECONDS ({TRAIN_TIME_SLICE_SECONDS + TRAIN_SLICE_GRACE_SECONDS}) "
        f"must be below CELERY_VISIBILITY_TIMEOUT ({CELERY_VISIBILITY_TIMEOUT}), or Redis "
        "would hand a running slice to a second worker")
TRAIN_MIN_DATASET_ROWS = env_int("TRAIN_MIN_DATASET_ROWS", 8, minimum=1)  # usable rows a run needs, per method
TRAIN_OPEN_CLIP_DIR = env_str("TRAIN_OPEN_CLIP_DIR", str(SCORERS_DIR / "open_clip"))  # reward models' embedder

# --- auth, i18n, static, media ------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "/admin/login/"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "staticfiles")))
WHITENOISE_USE_FINDERS = True  # serve app and project static files even before collectstatic
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
# Behind nginx: the internal location that serves MEDIA_ROOT (e.g. /internal-media/); poll images are then sent
# by the front server (X-Accel-Redirect) after Django has checked the voter. Empty: Django streams them.
MEDIA_INTERNAL_REDIRECT = env_str("MEDIA_INTERNAL_REDIRECT", "")
STORAGES = {
    "default": {"BACKEND": env_str("DEFAULT_FILE_STORAGE", "django.core.files.storage.FileSystemStorage")},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

REST_FRAMEWORK = {
    # Token first: a bad or missing token is a 401 with WWW-Authenticate (DRF answers 403 when the first class is
    # the session's, which has no challenge to offer).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
}
SPECTACULAR_SETTINGS = {"TITLE": "Arena API", "VERSION": "1.0.0", "DESCRIPTION": "Read-only leaderboards, models, polls and votes."}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR"))},
    # A task's "succeeded in 0.2s: {...}" line is the worker's business, not the console's (LOG_LEVEL=DEBUG shows it).
    "loggers": {"celery.app.trace": {"level": env_choice("CELERY_TRACE_LOG_LEVEL", "WARNING", ("DEBUG", "INFO", "WARNING", "ERROR"))}},
}
