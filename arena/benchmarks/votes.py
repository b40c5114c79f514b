"""``bench_votes``: the full voter cycle through gunicorn, measured honestly.

The benchmark runs in a database of its own next to the configured one (``<name>_bench`` on PostgreSQL, a
temporary file on SQLite), seeds it with models and images, serves it with gunicorn (and the ratings consumer
as its own process, ``apply_ratings --follow``, as at scale), drives it from load-generator processes
(:mod:`arena.benchmarks.loadgen`) pinned to a core of their own where the machine has more than one, reads the
CPU time every process used from ``/proc``, then checks the database: every vote a generator saw accepted is
stored exactly once, and the live ratings equal a replay of the log.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing as mp
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse, urlunparse

from django.conf import settings
from django.db import connection

from arena.benchmarks import loadgen

TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Options:
    rate: float = 0.0  # open loop: cycles per second (0: closed loop)
    clients: int = 16  # closed loop: voters
    seconds: float = 20.0
    think: float = 2.0  # median seconds between the images loading and the vote (open loop)
    ffa_share: float = 0.25
    voters: int = 2000
    models: int = 12
    prompts: int = 30
    workers: int = 2
    threads: int = 4
    generators: int = 1
    keep: bool = False


class BenchError(Exception):
    pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of one process (and its reaped children), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / TICK


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def _postgres_pids(database: str) -> list[int]:
    """The bench database's backends and the server processes that work for every database (WAL writer...)."""
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if cmd.startswith("postgres:") and (f" {database} " in cmd or any(
                k in cmd for k in ("walwriter", "checkpointer", "background writer", "walsummarizer"))):
            pids.append(int(proc.name))
    return pids


class _Meter:
    """CPU seconds of a set of processes between two readings (processes that appear meanwhile count fully)."""

    def __init__(self, pids_fn):
        self.pids_fn = pids_fn
        self.start = {p: _cpu_seconds(p) for p in pids_fn()}

    def used(self) -> float:
        now = {p: _cpu_seconds(p) for p in self.pids_fn()}
        return sum(v - self.start.get(p, 0.0) for p, v in now.items())


def bench_database(tmp: Path) -> tuple[str, str, callable]:
    """(database URL, database name for /proc matching or "", drop function) for the bench database."""
    db = settings.DATABASES["default"]
    if connection.vendor == "sqlite":
        return f"sqlite:///{tmp / 'bench.sqlite3'}", "", lambda: None
    if connection.vendor != "postgresql":
        raise BenchError(f"bench_votes supports PostgreSQL and SQLite, not {db['ENGINE']}")
    import psycopg

    name = f"{db['NAME']}_bench"
    url = urlparse(settings.DATABASE_URL)
    admin_url = urlunparse(url._replace(path="/postgres"))

    def run(sql: str) -> None:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql)

    run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    run(f'CREATE DATABASE "{name}"')
    return urlunparse(url._replace(path=f"/{name}")), name, lambda: run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _cores() -> tuple[list[int], list[int]]:
    """(server cores, generator cores): the generators get the last core when there are two or more."""
    cores = sorted(os.sched_getaffinity(0))
    return (cores[:-1], cores[-1:]) if len(cores) > 1 else (cores, cores)


def _wait_for(port: int, server: subprocess.Popen) -> None:
    for _ in range(300):
        if server.poll() is not None:
            raise BenchError("gunicorn exited before serving")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/leaderboard/")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise BenchError("gunicorn did not answer within 30 s")


def _drive(port: int, opts: Options, cpus: list[int]) -> dict:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    n = max(1, opts.generators)
    procs = []
    for i in range(n):
        if opts.rate:
            kwargs = dict(rate=opts.rate / n, seconds=opts.seconds, voters=max(1, opts.voters // n), seed=i + 1,
                          mode_mix=opts.ffa_share, think=opts.think, connections=64)
            kind = "open"
        else:
            share = opts.clients // n + (1 if i < opts.clients % n else 0)
            if not share:
                continue
            kwargs = dict(clients=share, seconds=opts.seconds, seed=i + 1, mode_mix=opts.ffa_share, think=0.0)
            kind = "closed"
        procs.append(ctx.Process(target=loadgen.run, args=(kind, port, out), kwargs={**kwargs, "cpus": cpus}))
    for p in procs:
        p.start()
    results = [out.get(timeout=opts.seconds + opts.think * 20 + 180) for _ in procs]
    for p in procs:
        p.join()
    merged = {"latencies": {k: [] for k in ("poll", "image", "vote", "reveal")}, "accepted": [], "errors": {},
              "cycles": 0, "exhausted": 0, "cpu_s": 0.0}
    for r in results:
        for k, v in r["latencies"].items():
            merged["latencies"][k] += v
        merged["accepted"] += r["accepted"]
        merged["cycles"] += r["cycles"]
        merged["exhausted"] += r["exhausted"]
        merged["cpu_s"] += r["cpu_s"]
        for k, v in r["errors"].items():
            merged["errors"][k] = merged["errors"].get(k, 0) + v
    return merged


def _p(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def _serve(env: dict, port: int, opts: Options, cpus: list[int]) -> tuple[subprocess.Popen, subprocess.Popen]:
    manage = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
    pin = ["taskset", "-c", ",".join(map(str, cpus))] if len(os.sched_getaffinity(0)) > 1 else []
    server = subprocess.Popen(
        [*pin, sys.executable, "-m", "gunicorn", "config.wsgi:application", "-b", f"127.0.0.1:{port}", "-w",
         str(opts.workers), "-k", "gthread", "--threads", str(opts.threads), "--log-level", "warning",
         "--keep-alive", "30", "--backlog", "2048"], env=env, cwd=settings.BASE_DIR)
    consumer = subprocess.Popen([*pin, *manage, "apply_ratings", "--follow"], env=env)  # its default cadence
    return server, consumer


def run_bench(opts: Options) -> dict:
    manage = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
    server_cpus, generator_cpus = _cores()
    with tempfile.TemporaryDirectory(prefix="arena-bench-") as tmpdir:
        tmp = Path(tmpdir)
        db_url, db_name, drop = bench_database(tmp)
        env = {
            **os.environ, "DATABASE_URL": db_url, "RATELIMIT_ENABLE": "0", "MIN_VOTE_SECONDS": "0", "DEBUG": "0",
            "LOG_LEVEL": "WARNING", "MEDIA_ROOT": str(tmp / "media"), "DB_CONN_MAX_AGE": "600",
            "CELERY_TASK_ALWAYS_EAGER": "1", "RATINGS_CONSUMER": "external",
        }
        try:
            subprocess.run([*manage, "migrate", "--noinput", "-v0"], env=env, check=True)
            subprocess.run([*manage, "bench_votes", "--seed-only", "--models", str(opts.models), "--prompts",
                            str(opts.prompts)], env=env, check=True)
            port = _free_port()
            server, consumer = _serve(env, port, opts, server_cpus)
            try:
                _wait_for(port, server)
                meters = {
                    "server": _Meter(lambda: [server.pid, *_children(server.pid), consumer.pid]),
                    "consumer": _Meter(lambda: [consumer.pid]),  # also inside "server": its share of it
                    "database": _Meter(lambda: _postgres_pids(db_name) if db_name else []),
                }
                started = time.monotonic()
                result = _drive(port, opts, generator_cpus)
                elapsed = time.monotonic() - started
                cpu = {k: m.used() for k, m in meters.items()}
            finally:
                for proc in (server, consumer):
                    proc.terminate()
                    proc.wait(timeout=30)
            tokens_file = tmp / "accepted.json"
            tokens_file.write_text(json.dumps(result["accepted"]))
            check = subprocess.run([*manage, "bench_votes", "--check-only", str(tokens_file)], env=env, check=True,
                                   capture_output=True, text=True)
            checked = json.loads(check.stdout.strip().splitlines()[-1])
        finally:
            if not opts.keep:
                drop()
    return _line(opts, result, checked, cpu, elapsed)


def _line(opts: Options, result: dict, checked: dict, cpu: dict, elapsed: float) -> dict:
    everything = [v for values in result["latencies"].values() for v in values]
    cycles = max(result["cycles"], 1)
    line = {
        "mode": "open" if opts.rate else "closed",
        "rate_target": opts.rate or None,
        "rate_achieved": round(result["cycles"] / opts.seconds, 1),
        "p50_ms": round(statistics.median(everything), 2) if everything else None,
        "p99_ms": _p(everything, 0.99),
        "p99_ms_by_kind": {k: _p(v, 0.99) for k, v in result["latencies"].items()},
        "requests": len(everything),
        "cpu_ms_per_cycle": {"server": round(1000 * cpu["server"] / cycles, 2),
                             "database": round(1000 * cpu["database"] / cycles, 2),
                             "generator": round(1000 * result["cpu_s"] / cycles, 2)},
        "consumer_cpu_ms_per_cycle": round(1000 * cpu["consumer"] / cycles, 2),  # the consumer's part of "server"
        "cycles": result["cycles"],
        "errors": result["errors"],
        "voters_out_of_images": result["exhausted"],
        "lost_votes": checked["lost_votes"],
        "double_votes": checked["double_votes"],
        "ratings_equal_replay": checked["ratings_equal_replay"],
        "database": connection.vendor,
        "gunicorn": f"{opts.workers}x{opts.threads}",
        "seconds": opts.seconds,
        "wall_s": round(elapsed, 1),
    }
    if not opts.rate:
        line["clients"] = opts.clients
        line["cycles_per_s"] = line["rate_achieved"]
    return line


def seed(n_models: int, n_prompts: int) -> None:
    """Models with one fixed-prompt image per prompt, all of one size and settings."""
    import io

    from django.core.files.base import ContentFile
    from PIL import Image as PILImage

    from generation.models import Image, ModelVariant, Prompt, PromptSet

    prompt_set = PromptSet.objects.create(name="bench")
    prompts = [Prompt.objects.create(prompt_set=prompt_set, text=f"1girl, bench prompt {i}") for i in range(n_prompts)]
    for m in range(n_models):
        variant = ModelVariant.objects.create(name=f"bench model {m}")
        buf = io.BytesIO()
        PILImage.new("RGB", (256, 256), (20 * m % 256, 90, 90)).save(buf, format="PNG")
        for p in prompts:
            image = Image(variant=variant, prompt=p, seed=1, sampler="Euler a", steps=20, cfg_scale=6, width=256,
                          height=256, settings_key="bench")
            image.file.save("x.png", ContentFile(buf.getvalue()), save=False)
            image.voter_file.save("x.png", ContentFile(buf.getvalue()), save=False)
            image.save()


def check(tokens_file: Path) -> dict:
    from django.db.models import Count

    from arena import polltickets
    from arena.models import Vote
    from arena.services import ratings_apply_all, ratings_recompute

    ratings_apply_all()  # what the consumer had not reached when it was stopped
    accepted = {str(polltickets.decode(t).nonce) for t in json.loads(tokens_file.read_text())}
    stored = [str(t) for t in Vote.objects.values_list("poll__token", flat=True)]
    per_poll = Vote.objects.values("poll_id").annotate(n=Count("id")).filter(n__gt=1).count()
    report = ratings_recompute(write=False)
    return {
        "lost_votes": len(accepted - set(stored)),
        "double_votes": per_poll + (len(stored) - len(set(stored))),
        "ratings_equal_replay": report.changed == 0 and report.chain_ok and report.pending == 0,
    }
