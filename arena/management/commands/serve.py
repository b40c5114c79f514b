"""`make run`'s server: the web server (gunicorn) and a Celery worker together, one Ctrl-C stops both.

With no broker configured (the embedded default) the queue is kombu's filesystem transport under ``var/queue``
and the cache is on disk under ``var/cache``, shared by both processes: tasks run exactly as in production, by
one local worker, and every long action (a free-prompt duel, a generation job) returns at once and shows its
progress. With ``REDIS_URL`` or ``CELERY_BROKER_URL`` set, those are used as they are."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from arena.management.commands.seed_demo import PASSWORD_FILE
from generation.fields import cli_float, cli_int

# Library chatter that buries the one block that matters (ARENA_VERBOSE=1 keeps it).
QUIET_ENV = {
    "TQDM_DISABLE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "DIFFUSERS_VERBOSITY": "error",
    "TRANSFORMERS_VERBOSITY": "error",
    "PYTHONWARNINGS": "ignore",
}


def child_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of the web server and the worker: a shared queue and cache when none is configured."""
    env = dict(os.environ if base is None else base)
    if not env.get("REDIS_URL") and not env.get("CELERY_BROKER_URL"):
        env["CELERY_BROKER_URL"] = "filesystem://localhost//"
        env.setdefault("ARENA_CACHE_DIR", str(settings.VAR_DIR / "cache"))
    env.setdefault("CELERY_TASK_ALWAYS_EAGER", "0")
    # One local worker (usually a CPU) makes one image at a time, so progress moves image by image.
    env.setdefault("GENERATION_BATCH_SIZE", "1")
    env.setdefault("ARENA_VAR_DIR", str(settings.VAR_DIR))
    if env.get("ARENA_VERBOSE", "") not in ("1", "true", "yes", "on"):
        for name, value in QUIET_ENV.items():
            env.setdefault(name, value)
    return env


def web_command(host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--bind", f"{host}:{port}",
            "--workers", "1", "--threads", "8", "--timeout", "120", "--graceful-timeout", "5",
            "--log-level", "warning"]


# The worker whose work can wait: it runs at a lower CPU priority, so on a small machine the web server and the
# image generation stay responsive while it trains.
BACKGROUND = "train"
BACKGROUND_NICE = 10


def _lower_priority() -> None:
    os.nice(BACKGROUND_NICE)


def worker_commands(log_level: str) -> list[list[str]]:
    """Three local workers: ``default`` (the ratings consumer, web-side work; beat runs its safety net) so a vote's
    rating change never waits behind a long generation job, ``gpu`` one task at a time, and ``train`` one task at
    a time beside it (at a lower CPU priority, see ``BACKGROUND``), so a training run or the demo's background
    build of the pre-trained tiny models never holds up the images of a free-prompt duel."""
    common = [sys.executable, "-m", "celery", "-A", "config", "worker", "--without-mingle", "--without-gossip",
              "--without-heartbeat", "--loglevel", log_level]
    return [
        common + ["--hostname", "default@%h", "--queues", "default", "--pool", "threads", "--concurrency", "2",
                  "--beat", "--schedule", str(settings.VAR_DIR / "celerybeat-schedule")],
        common + ["--hostname", "gpu@%h", "--queues", "gpu", "--pool", "prefork", "--concurrency", "1"],
        common + ["--hostname", f"{BACKGROUND}@%h", "--queues", "train", "--pool", "prefork", "--concurrency", "1"],
    ]



def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _listening(host: str, port: int) -> bool:
    target = "127.0.0.1" if host in ("0.0.0.0", "") else ("::1" if host == "::" else host)
    try:
        with socket.create_connection((target, port), timeout=0.5):
            return True
    except OSError:
        return False


def public_url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "", "::") else (f"[{host}]" if ":" in host else host)
    return f"http://{shown}:{port}/"


def ready_block(url: str, password_path, broker: str, log_path=None, upgrading: bool = False) -> str:
    password = password_path.read_text().strip() if password_path.exists() else ""
    lines = [
        "",
        "=" * 64,
        f"  The arena is running at   {url}",
        f"  Admin                     {url}admin/",
    ]
    if password:
        lines += [f"  Admin user                admin", f"  Admin password            {password}",
                  f"  (kept in {password_path})"]
    else:
        lines += ["  No admin password file yet: `python manage.py seed_demo --no-images` makes one."]
    lines += [f"  Tasks                     local workers ({broker})"]
    if log_path is not None:
        lines += [f"  Worker log                {log_path}"]
    if upgrading:
        lines += ["  Demo models               random weights for now: pre-trained ones are being built in the",
                  "                            background (~12 min on 2 cores), then they replace them"]
    lines += ["  Ctrl-C stops the server and the worker.",
              "=" * 64, ""]
    return "\n".join(lines)


class Command(BaseCommand):
    help = "Serve the site and run a Celery worker next to it (one command, one Ctrl-C)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("HOST") or "127.0.0.1")
        parser.add_argument("--port", type=cli_int(minimum=1, maximum=65535), default=None, help="default: $PORT, else 8000")
        parser.add_argument("--no-worker", action="store_true", help="the web server only (a worker runs elsewhere)")
        parser.add_argument("--ready-timeout", type=cli_float(minimum=0.1, maximum=3600), default=90.0,
                            help="seconds to wait for the web server to answer")

    def handle(self, *args, host: str, port: int | None, no_worker: bool, ready_timeout: float, **options):
        if port is None:
            raw = os.environ.get("PORT") or "8000"
            if not raw.isascii() or not raw.isdigit():
                raise CommandError(f"PORT={raw!r} is not a port number")
            port = int(raw)
        if not 1 <= port <= 65535:
            raise CommandError(f"port {port} is not between 1 and 65535")
        if not _port_free(host, port):
            raise CommandError(f"{host}:{port} is in use; stop what serves there or give another PORT=...")
        # Ctrl-C, `kill` and a closed terminal all stop everything (a shell's background job would ignore SIGINT).
        for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(number, _interrupt)
        env = child_env()
        level = "INFO" if env.get("ARENA_VERBOSE") in ("1", "true", "yes", "on") else "WARNING"
        children: list[subprocess.Popen] = []
        log_path = settings.VAR_DIR / "log" / "worker.log"
        log = None
        upgrading = False
        try:
            if not no_worker:
                log_path.parent.mkdir(parents=True, exist_ok=True)
                log = open(log_path, "a", buffering=1)  # noqa: SIM115 (closed when the children have stopped)
                for command in worker_commands(level):
                    background = f"{BACKGROUND}@%h" in command
                    children.append(subprocess.Popen(command, env=env, cwd=settings.BASE_DIR, stdout=log,
                                                     stderr=subprocess.STDOUT,
                                                     preexec_fn=_lower_priority if background else None))
                upgrading = _demo_upgrade_enqueue(env, log)
            children.append(subprocess.Popen(web_command(host, port), env=env, cwd=settings.BASE_DIR))
            deadline = time.monotonic() + ready_timeout
            while not _listening(host, port):
                if any(c.poll() is not None for c in children):
                    raise CommandError(f"the web server or a worker stopped during start-up (see above and {log_path})")
                if time.monotonic() > deadline:
                    raise CommandError(f"the web server did not answer on {host}:{port} within {ready_timeout:.0f} s")
                time.sleep(0.2)
            broker = env.get("CELERY_BROKER_URL") or env.get("REDIS_URL") or "?"
            if broker.startswith("filesystem://"):
                broker = f"queue in {settings.VAR_DIR / 'queue'}"
            elif "@" in broker:
                broker = broker.split("@", 1)[-1]
            self.stdout.write(ready_block(public_url(host, port), settings.VAR_DIR / PASSWORD_FILE,
                                          "no worker here" if no_worker else broker, None if no_worker else log_path,
                                          upgrading=not no_worker and upgrading))
            self.stdout.flush()
            while all(c.poll() is None for c in children):
                time.sleep(0.5)
            stopped = next(c for c in children if c.poll() is not None)
            raise CommandError(f"{' '.join(stopped.args[2:4])} stopped (exit status {stopped.returncode}); stopping the rest")
        except KeyboardInterrupt:
            self.stdout.write("Stopping…")
        finally:
            _stop(children)
            if log is not None:
                log.close()


def _demo_upgrade_enqueue(env: dict[str, str], log) -> bool:
    """When the demo runs on random-weight tiny models, send their pre-trained replacement's build to the local
    train worker. ``make run`` seeds the demo in process (no broker), so the message is sent here, by a
    command that runs with the workers' broker settings. Returns whether the upgrade is under way."""
    from generation import services as generation_services

    if not generation_services.demo_upgrade_needed():
        return False
    try:
        done = subprocess.run([sys.executable, "manage.py", "upgrade_demo", "--enqueue"], env=env,
                              cwd=settings.BASE_DIR, stdout=log, stderr=subprocess.STDOUT, timeout=120)
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def _interrupt(number, frame):
    raise KeyboardInterrupt


def _stop(children: list[subprocess.Popen], grace: float = 10.0) -> None:
    """SIGTERM (after the SIGINT a terminal's Ctrl-C sent them too), then SIGKILL what is still there."""
    for child in children:
        if child.poll() is None:
            try:
                child.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + grace
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
