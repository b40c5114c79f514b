"""Benchmark complete vote cycles against the site served by gunicorn on loopback.

Each client is a voter: it fetches a fixed-prompt duel (htmx partial), posts a vote, and repeats. The
benchmark runs in a database of its own next to the configured one (``<name>_bench`` on PostgreSQL, a temporary
file on SQLite), seeds it with models and images, serves it with gunicorn, drives it from client processes,
then checks the database: every vote a client saw accepted must be stored exactly once, and the live ratings
must equal a replay of the log. Prints one JSON line.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing as mp
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse, urlunparse

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

TOKEN_RE = re.compile(rb'data-poll="([0-9a-f-]{36})"')
CHOICES = ["left", "right", "tie", "bothbad", "left", "right"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cookies(response: http.client.HTTPResponse, jar: dict[str, str]) -> None:
    for header, value in response.getheaders():
        if header.lower() == "set-cookie":
            name, _, rest = value.partition("=")
            jar[name.strip()] = rest.split(";", 1)[0]


def _client(port: int, deadline: float, seed: int, out: mp.Queue) -> None:
    rng = random.Random(seed)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    jar: dict[str, str] = {}
    latencies: list[float] = []
    accepted: list[str] = []
    errors: dict[str, int] = {}

    def request(method: str, path: str, body: str | None = None) -> tuple[int, bytes]:
        nonlocal conn
        headers = {"HX-Request": "true", "Cookie": "; ".join(f"{k}={v}" for k, v in jar.items())}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            headers["X-CSRFToken"] = jar.get("csrftoken", "")
        for attempt in range(2):
            try:
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                _cookies(response, jar)
                if response.getheader("Connection", "").lower() == "close":
                    conn.close()
                return response.status, data
            except (http.client.HTTPException, OSError):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    while time.monotonic() < deadline:
        start = time.perf_counter()
        try:
            status, body = request("GET", "/duel/")
            match = TOKEN_RE.search(body)
            if status != 200 or not match:
                errors[f"poll {status}"] = errors.get(f"poll {status}", 0) + 1
                continue
            token = match.group(1).decode()
            status, body = request("POST", f"/poll/{token}/vote/", f"choice={rng.choice(CHOICES)}")
        except (http.client.HTTPException, OSError) as exc:
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            continue
        if status == 200:
            accepted.append(token)
            latencies.append((time.perf_counter() - start) * 1000.0)
        else:
            errors[f"vote {status}"] = errors.get(f"vote {status}", 0) + 1
    out.put({"latencies": latencies, "accepted": accepted, "errors": errors})


def _client_process(port: int, deadline: float, seed: int, threads: int, out: mp.Queue) -> None:
    import threading

    results: list[dict] = []
    lock = threading.Lock()

    class _Sink:
        def put(self, item):
            with lock:
                results.append(item)

    workers = [threading.Thread(target=_client, args=(port, deadline, seed * 1000 + i, _Sink())) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    out.put(_merge(results))


def _merge(results: list[dict]) -> dict:
    merged = {"latencies": [], "accepted": [], "errors": {}}
    for r in results:
        merged["latencies"] += r["latencies"]
        merged["accepted"] += r["accepted"]
        for k, v in r["errors"].items():
            merged["errors"][k] = merged["errors"].get(k, 0) + v
    return merged


class Command(BaseCommand):
    help = "Benchmark vote cycles (fetch a duel, post a vote) through gunicorn; prints one JSON line."

    def add_arguments(self, parser):
        # Imported here: the client processes (spawned) import this module before Django is set up.
        from arena.inputs import cli_float, cli_int

        parser.add_argument("--clients", type=cli_int(minimum=None), default=16)
        parser.add_argument("--seconds", type=cli_float(), default=20.0)
        parser.add_argument("--models", type=cli_int(minimum=None), default=12)
        parser.add_argument("--prompts", type=cli_int(minimum=None), default=30)
        parser.add_argument("--workers", type=cli_int(minimum=None), default=0, help="gunicorn workers (default: 2 per core)")
        parser.add_argument("--threads", type=cli_int(minimum=None), default=2, help="gunicorn threads per worker")
        parser.add_argument("--client-processes", type=cli_int(minimum=None), default=0, help="default: one per core")
        parser.add_argument("--keep", action="store_true", help="keep the bench database afterwards")
        # internal steps, run in the bench database by a child process
        parser.add_argument("--seed-only", action="store_true", help="(internal)")
        parser.add_argument("--check-only", metavar="TOKENS_FILE", help="(internal)")

    def handle(self, *args, **opts):
        if opts["seed_only"]:
            return self._seed(opts["models"], opts["prompts"])
        if opts["check_only"]:
            return self._check(Path(opts["check_only"]))
        if opts["clients"] < 1 or opts["seconds"] <= 0:
            raise CommandError("--clients must be at least 1 and --seconds positive")
        return self._run(opts)

    # -- orchestration --------------------------------------------------------------------------------------

    def _bench_database_url(self, tmp: Path) -> tuple[str, callable]:
        db = settings.DATABASES["default"]
        if db["ENGINE"] == "django.db.backends.sqlite3":
            return f"sqlite:///{tmp / 'bench.sqlite3'}", lambda: None
        if db["ENGINE"] != "django.db.backends.postgresql":
            raise CommandError(f"bench_votes supports PostgreSQL and SQLite, not {db['ENGINE']}")
        import psycopg

        name = f"{db['NAME']}_bench"
        url = urlparse(settings.DATABASE_URL)
        admin_url = urlunparse(url._replace(path="/postgres"))
        bench_url = urlunparse(url._replace(path=f"/{name}"))

        def run(sql: str) -> None:
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(sql)

        run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        run(f'CREATE DATABASE "{name}"')
        return bench_url, lambda: run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _run(self, opts) -> None:
        cores = os.cpu_count() or 2
        workers = opts["workers"] or 2 * cores
        client_procs = max(1, min(opts["client_processes"] or cores, opts["clients"]))
        with tempfile.TemporaryDirectory(prefix="arena-bench-") as tmpdir:
            tmp = Path(tmpdir)
            db_url, drop = self._bench_database_url(tmp)
            env = {
                **os.environ, "DATABASE_URL": db_url, "RATELIMIT_ENABLE": "0", "MIN_VOTE_SECONDS": "0",
                "DEBUG": "0", "LOG_LEVEL": "WARNING", "MEDIA_ROOT": str(tmp / "media"), "DB_CONN_MAX_AGE": "600",
                "CELERY_TASK_ALWAYS_EAGER": "1",
            }
            manage = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
            try:
                subprocess.run([*manage, "migrate", "--noinput", "-v0"], env=env, check=True)
                subprocess.run([*manage, "bench_votes", "--seed-only", "--models", str(opts["models"]), "--prompts", str(opts["prompts"])], env=env, check=True)
                port = _free_port()
                server = subprocess.Popen(
                    [sys.executable, "-m", "gunicorn", "config.wsgi:application", "-b", f"127.0.0.1:{port}", "-w", str(workers),
                     "-k", "gthread", "--threads", str(opts["threads"]), "--log-level", "warning", "--keep-alive", "30"],
                    env=env, cwd=settings.BASE_DIR,
                )
                try:
                    self._wait_for(port, server)
                    result = self._drive(port, opts["clients"], opts["seconds"], client_procs)
                finally:
                    server.terminate()
                    server.wait(timeout=30)
                tokens_file = tmp / "accepted.json"
                tokens_file.write_text(json.dumps(result["accepted"]))
                check = subprocess.run([*manage, "bench_votes", "--check-only", str(tokens_file)], env=env, check=True,
                                       capture_output=True, text=True)
                checked = json.loads(check.stdout.strip().splitlines()[-1])
            finally:
                if not opts["keep"]:
                    drop()
        lat = sorted(result["latencies"])
        cycles = len(lat)
        line = {
            "cycles_per_s": round(cycles / opts["seconds"], 1),
            "p50_ms": round(statistics.median(lat), 2) if lat else None,
            "p99_ms": round(lat[min(len(lat) - 1, int(0.99 * len(lat)))], 2) if lat else None,
            "lost_votes": checked["lost_votes"],
            "double_votes": checked["double_votes"],
            "cycles": cycles,
            "errors": result["errors"],
            "ratings_equal_replay": checked["ratings_equal_replay"],
            "clients": opts["clients"],
            "seconds": opts["seconds"],
            "gunicorn_workers": workers,
            "gunicorn_threads": opts["threads"],
            "database": settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1],
        }
        self.stdout.write(json.dumps(line))

    def _wait_for(self, port: int, server: subprocess.Popen) -> None:
        for _ in range(300):
            if server.poll() is not None:
                raise CommandError("gunicorn exited before serving")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/leaderboard/")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise CommandError("gunicorn did not answer within 30 s")

    def _drive(self, port: int, clients: int, seconds: float, processes: int) -> dict:
        ctx = mp.get_context("spawn")
        out = ctx.Queue()
        deadline = time.monotonic() + seconds
        per = [clients // processes + (1 if i < clients % processes else 0) for i in range(processes)]
        procs = [ctx.Process(target=_client_process, args=(port, deadline, i + 1, n, out)) for i, n in enumerate(per) if n]
        for p in procs:
            p.start()
        results = [out.get(timeout=seconds + 120) for _ in procs]
        for p in procs:
            p.join()
        return _merge(results)

    # -- steps run inside the bench database ------------------------------------------------------------------

    def _seed(self, n_models: int, n_prompts: int) -> None:
        import io

        from django.core.files.base import ContentFile
        from PIL import Image as PILImage

        from generation.models import Image, ModelVariant, Prompt, PromptSet

        buf = io.BytesIO()
        PILImage.new("RGB", (64, 64), (90, 90, 90)).save(buf, format="PNG")
        png = buf.getvalue()
        prompt_set = PromptSet.objects.create(name="bench")
        prompts = [Prompt.objects.create(prompt_set=prompt_set, text=f"1girl, bench prompt {i}") for i in range(n_prompts)]
        for m in range(n_models):
            variant = ModelVariant.objects.create(name=f"bench model {m}")
            for p in prompts:
                image = Image(variant=variant, prompt=p, seed=1, sampler="Euler a", steps=20, cfg_scale=6, width=64,
                              height=64, settings_key="bench")
                image.file.save("x.png", ContentFile(png), save=False)
                image.voter_file.save("x.png", ContentFile(png), save=False)
                image.save()

    def _check(self, tokens_file: Path) -> None:
        from django.db.models import Count

        from arena.models import Vote
        from arena.services import ratings_recompute

        accepted = set(json.loads(tokens_file.read_text()))
        stored = set(str(t) for t in Vote.objects.values_list("poll__token", flat=True))
        per_poll = Vote.objects.values("poll_id").annotate(n=Count("id")).filter(n__gt=1).count()
        report = ratings_recompute(write=False)
        self.stdout.write(json.dumps({
            "lost_votes": len(accepted - stored),
            "double_votes": per_poll + max(0, Vote.objects.count() - len(stored)),
            "ratings_equal_replay": report.changed == 0,
        }))
