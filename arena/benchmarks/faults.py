"""``fault_drill``: voters through the real HTTP stack (gunicorn) while a server they depend on goes away.

* ``pg-restart``: a PostgreSQL of the drill's own is cut off (``pg_ctl stop -m immediate``, as in a crash) and
  started again while ``clients`` voters vote back to back.
* ``redis-stop``: the cache and rate-limit Redis (of the drill's own) is shut down while they vote, and started
  again, empty.

A voter whose vote is answered 503 (the database is away: ``config.middleware``) or 409 (being recorded) sees the
message and sends the same vote again, as the page's "Try again" does; a vote is given up only after
``retry_seconds``. Afterwards the database is checked against what the voters saw, and one line of figures is made:
votes ``sent`` (one per poll), ``acknowledged`` (a 2xx reveal came back), ``stored`` (vote rows), ``lost``
(acknowledged but not stored), ``doubled`` (a poll with more than one vote, or a vote the ratings counted twice),
``refused`` (votes that were answered 503 at least once before they went through), ``abandoned`` (never answered
2xx), and whether the live ratings equal a replay of the log.

The disk-full drill is :func:`generation_disk_full` (generation, no HTTP).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from django.conf import settings

from arena.benchmarks import loadgen
from arena.benchmarks.servers import LocalPostgres, LocalRedis, free_port

RETRYABLE = (503, 409)


@dataclass
class Tally:
    sent: list[str] = field(default_factory=list)
    acknowledged: set[str] = field(default_factory=set)
    refused: set[str] = field(default_factory=set)
    abandoned: list[str] = field(default_factory=list)
    refusals: int = 0  # 503 answers to votes
    refusals_unclear: int = 0  # 503 answers (votes or poll pages) without Retry-After or without the message
    poll_refusals: int = 0  # 503 answers to poll pages (the database away)
    exhausted: int = 0  # a voter had seen every image: a new voter took their place
    outage: list[float] = field(default_factory=list)  # [away since, back at] (monotonic)
    acknowledged_at: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    messages: set[str] = field(default_factory=set)

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


def _message(body: bytes) -> str:
    import re

    found = re.search(rb"<p>(.*?)</p>", body, re.S)
    return (found.group(1) if found else body[:200]).decode(errors="replace").strip()


async def _vote(client: loadgen.Client, voter: loadgen.Voter, token: str, body: bytes, tally: Tally,
                retry_seconds: float) -> None:
    """Send one vote until it is answered 2xx, or give up after ``retry_seconds``."""
    give_up = time.monotonic() + retry_seconds
    while True:
        status = None
        try:
            csrf = voter.cookies.get("csrftoken", "")
            status, head, data = await client.request(
                "POST", f"/poll/{quote(token)}/vote/",
                voter.headers(**{"X-CSRFToken": csrf, "Content-Type": "application/x-www-form-urlencoded"}), body)
            voter.keep(head)
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            tally.error(f"vote {type(exc).__name__}")
        if status is not None and 200 <= status < 300:
            tally.acknowledged.add(token)
            tally.acknowledged_at.append(time.monotonic())
            return
        if status == 503:
            tally.refusals += 1
            tally.refused.add(token)
            message = _message(data)
            tally.messages.add(message)
            if not head.get("retry-after") or "try again" not in message.lower():
                tally.refusals_unclear += 1
        elif status is not None and status not in RETRYABLE:
            tally.error(f"vote {status}: {_message(data)[:120]}")
            tally.abandoned.append(token)
            return
        if time.monotonic() > give_up:
            tally.abandoned.append(token)
            return
        await asyncio.sleep(0.25)


async def _voter(client: loadgen.Client, i: int, tally: Tally, *, deadline: float, seed: int, ffa_share: float,
                 retry_seconds: float) -> None:
    rng = random.Random(seed * 1000 + i)
    voter = loadgen.Voter()
    while time.monotonic() < deadline:
        mode = "ffa" if rng.random() < ffa_share else "fixed"
        try:
            status, head, page = await client.request("GET", "/ffa/" if mode == "ffa" else "/duel/", voter.headers())
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            tally.error(f"poll {type(exc).__name__}")
            await asyncio.sleep(0.2)
            continue
        voter.keep(head)
        match = loadgen.TOKEN_RE.search(page)
        if status == 503 and not match:
            if b"not seen yet" in page:  # this voter has seen every image: a new voter comes
                tally.exhausted += 1
                voter = loadgen.Voter()
                continue
            tally.poll_refusals += 1  # the database is away
            message = _message(page)
            tally.messages.add(message)
            if not head.get("retry-after") or "try again" not in message.lower():
                tally.refusals_unclear += 1
            await asyncio.sleep(0.2)
            continue
        if status != 200 or not match:
            tally.error(f"poll {status}")
            await asyncio.sleep(0.2)
            continue
        token = match.group(1).decode()
        images = len(dict.fromkeys(loadgen.IMAGE_RE.findall(page)))
        body = (f"choice=best&best={rng.randrange(images)}" if mode == "ffa"
                else f"choice={rng.choice(loadgen.DUEL_CHOICES)}").encode()
        tally.sent.append(token)
        await _vote(client, voter, token, body, tally, retry_seconds)


async def _drive(port: int, *, clients: int, seconds: float, seed: int, ffa_share: float, retry_seconds: float,
                 fault) -> Tally:
    """``clients`` voters for ``seconds``; ``fault`` (a blocking function) runs in a thread meanwhile."""
    client = loadgen.Client("127.0.0.1", port, clients)
    tally = Tally()
    deadline = time.monotonic() + seconds
    fault_thread = threading.Thread(target=fault, args=(tally.outage,), daemon=True)
    fault_thread.start()
    await asyncio.gather(*[_voter(client, i, tally, deadline=deadline, seed=seed, ffa_share=ffa_share,
                                  retry_seconds=retry_seconds) for i in range(clients)])
    fault_thread.join(timeout=60)
    return tally


def _wait_http(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    import http.client

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("gunicorn exited before serving")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/duel/")
            if conn.getresponse().status in (200, 503):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"gunicorn did not answer within {timeout:.0f} s")


def _stop(proc: subprocess.Popen) -> int | None:
    """Terminate a child; its exit status if it had exited by itself before (None while it was running)."""
    code = proc.poll()
    if code is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    return code


@dataclass
class DrillOptions:
    clients: int = 16
    seconds: float = 8.0  # voting time
    fault_at: float = 2.5  # seconds into the voting
    down_seconds: float = 1.0  # how long the server stays away
    retry_seconds: float = 15.0  # a voter gives a vote up after this long
    ffa_share: float = 0.25
    models: int = 8
    prompts: int = 20
    seed: int = 1


def _manage() -> list[str]:
    return [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]


@dataclass
class Prepared:
    """A drill cluster with a migrated, seeded template database (and the seeded images' media folder): each drill
    copies the template (``CREATE DATABASE … TEMPLATE``) instead of migrating again."""

    pg: LocalPostgres
    template: str
    media: Path
    count: int = 0

    def database(self) -> str:
        self.count += 1
        import psycopg

        name = f"arena_drill_{self.count}"
        with psycopg.connect(self.pg.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        return self.pg.url(name)


def prepare(pg: LocalPostgres, media: Path, opts: DrillOptions | None = None) -> Prepared:
    """Migrate and seed a template database on ``pg`` (images under ``media``)."""
    opts = opts or DrillOptions()
    env = {**_base_env(media.parent), "MEDIA_ROOT": str(media), "DATABASE_URL": pg.create_database("arena_template")}
    manage = _manage()
    subprocess.run([*manage, "migrate", "--noinput", "-v0"], env=env, check=True, timeout=300)
    subprocess.run([*manage, "bench_votes", "--seed-only", "--models", str(opts.models), "--prompts",
                    str(opts.prompts)], env=env, check=True, timeout=300)
    return Prepared(pg=pg, template="arena_template", media=media)


def _site(env: dict, opts: DrillOptions, tmp: Path, fault, scenario: str, extra: dict | None = None) -> dict:
    """Serve the drill database with gunicorn and the ratings consumer, drive the voters while ``fault`` runs, stop
    everything and check the database: the figures line."""
    manage = _manage()
    port = free_port()
    log = open(tmp / "gunicorn.log", "wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi:application", "-b", f"127.0.0.1:{port}", "-w", "2", "-k",
         "gthread", "--threads", "4", "--log-level", "warning", "--keep-alive", "30", "--graceful-timeout", "5"],
        env=env, cwd=settings.BASE_DIR, stdout=log, stderr=subprocess.STDOUT)
    consumer = subprocess.Popen([*manage, "apply_ratings", "--follow", "--interval", "0.05"], env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_http(port, server)
        started = time.monotonic()
        tally = asyncio.run(_drive(port, clients=opts.clients, seconds=opts.seconds, seed=opts.seed,
                                   ffa_share=opts.ffa_share, retry_seconds=opts.retry_seconds, fault=fault))
        elapsed = time.monotonic() - started
        time.sleep(0.5)
        consumer_exit = consumer.poll()
    finally:
        _stop(server)
        _stop(consumer)
        log.close()
    tokens = tmp / "tally.json"
    tokens.write_text(json.dumps({"sent": tally.sent, "acknowledged": sorted(tally.acknowledged)}))
    checked = subprocess.run([*manage, "fault_drill", "--check-only", str(tokens)], env=env, check=True,
                             capture_output=True, text=True, timeout=300)
    db = json.loads(checked.stdout.strip().splitlines()[-1])
    return {
        "scenario": scenario,
        "sent": len(tally.sent),
        "acknowledged": len(tally.acknowledged),
        "stored": db["stored"],
        "lost": db["lost"],
        "doubled": db["doubled"],
        "refused": len(tally.refused),
        "abandoned": len(tally.abandoned),
        "stored_not_sent": db["stored_not_sent"],
        "ratings_equal_replay": db["ratings_equal_replay"],
        "refusals_503": tally.refusals,
        "refusals_without_message": tally.refusals_unclear,
        "poll_pages_503": tally.poll_refusals,
        "voters_out_of_images": tally.exhausted,
        "acknowledged_while_down": sum(1 for t in tally.acknowledged_at
                                       if len(tally.outage) == 2 and tally.outage[0] <= t <= tally.outage[1]),
        "errors": tally.errors,
        "messages": sorted(tally.messages)[:3],
        "ratings_consumer_survived": consumer_exit is None,
        "clients": opts.clients,
        "wall_s": round(elapsed, 1),
        **(extra or {}),
    }


def _base_env(tmp: Path) -> dict:
    env = {**os.environ, "MIN_VOTE_SECONDS": "0", "DEBUG": "0", "LOG_LEVEL": "WARNING", "MEDIA_ROOT": str(tmp / "media"),
           "DB_CONN_MAX_AGE": "600", "CELERY_TASK_ALWAYS_EAGER": "1", "RATINGS_CONSUMER": "external",
           "ARENA_VAR_DIR": str(tmp / "var"), "PYTHONPATH": str(settings.BASE_DIR)}
    for name in ("REDIS_URL", "CELERY_BROKER_URL", "DATABASE_URL"):
        env.pop(name, None)
    return env


class _Cluster:
    """The drill's PostgreSQL: the one ``prepared`` brings, else a new one, prepared here and removed after."""

    def __init__(self, prepared: Prepared | None, tmp: Path, opts: DrillOptions):
        self.own = prepared is None
        if prepared is None:
            pg = LocalPostgres()
            try:
                pg.start()
                prepared = prepare(pg, tmp / "media", opts)
            except BaseException:
                pg.close()
                raise
        self.prepared = prepared

    def close(self) -> None:
        if self.own:
            self.prepared.pg.close()


def pg_restart(opts: DrillOptions | None = None, prepared: Prepared | None = None) -> dict:
    """Voters vote while the drill's PostgreSQL is cut off and started again."""
    opts = opts or DrillOptions()
    with tempfile.TemporaryDirectory(prefix="arena-drill-") as tmpdir:
        tmp = Path(tmpdir)
        cluster = _Cluster(prepared, tmp, opts)
        try:
            pg = cluster.prepared.pg
            env = {**_base_env(tmp), "DATABASE_URL": cluster.prepared.database(), "RATELIMIT_ENABLE": "0",
                   "MEDIA_ROOT": str(cluster.prepared.media)}
            restarted = {}

            def fault(outage: list[float]):
                time.sleep(opts.fault_at)
                outage.append(time.monotonic())
                pg.restart(down_seconds=opts.down_seconds)
                outage.append(time.monotonic())
                restarted["pg_down_s"] = round(outage[1] - outage[0], 2)

            line = _site(env, opts, tmp, fault, "pg-restart")
        finally:
            cluster.close()
        line.update(restarted)
        return line


def redis_stop(opts: DrillOptions | None = None, prepared: Prepared | None = None) -> dict:
    """Voters vote while the cache and rate-limit Redis is shut down and started again (empty). The database is a
    PostgreSQL of the drill's own; rate limits are on (with limits no voter here reaches)."""
    opts = opts or DrillOptions()
    with tempfile.TemporaryDirectory(prefix="arena-drill-") as tmpdir, LocalRedis() as redis:
        tmp = Path(tmpdir)
        cluster = _Cluster(prepared, tmp, opts)
        try:
            env = {**_base_env(tmp), "DATABASE_URL": cluster.prepared.database(), "REDIS_URL": redis.url(0),
                   "CELERY_BROKER_URL": "memory://", "RATELIMIT_ENABLE": "1", "RATELIMIT_VOTER": "100000/m",
                   "RATELIMIT_IP": "100000/m", "MEDIA_ROOT": str(cluster.prepared.media)}
            stopped = {}

            def fault(outage: list[float]):
                time.sleep(opts.fault_at)
                redis.stop()
                outage.append(time.monotonic())
                time.sleep(max(opts.down_seconds, opts.seconds / 3))
                redis.start()
                outage.append(time.monotonic())
                stopped["redis_down_s"] = round(outage[1] - outage[0], 2)

            line = _site(env, opts, tmp, fault, "redis-stop")
        finally:
            cluster.close()
        line.update(stopped)
        return line


def check(tally_file: Path) -> dict:
    """The database against what the voters saw (run in the drill's environment)."""
    from django.db.models import Count

    from arena import polltickets
    from arena.models import Rating, Scope, Vote
    from arena.services import ratings_apply_all, ratings_recompute

    ratings_apply_all()  # what the consumer had not reached when it was stopped
    tally = json.loads(tally_file.read_text())
    sent = {str(polltickets.decode(t).nonce) for t in tally["sent"]}
    acknowledged = {str(polltickets.decode(t).nonce) for t in tally["acknowledged"]}
    stored = [str(t) for t in Vote.objects.values_list("poll__token", flat=True)]
    doubled = Vote.objects.values("poll_id").annotate(n=Count("id")).filter(n__gt=1).count()
    doubled += len(stored) - len(set(stored))
    counted = Vote.objects.filter(counted=True, excluded=False)
    expected = sum(len(v) for v in counted.values_list("variants", flat=True))
    applied = sum(Rating.objects.filter(scope=Scope.OVERALL).values_list("votes", flat=True))
    doubled += max(0, applied - expected)  # a vote the ratings took in twice
    report = ratings_recompute(write=False)
    return {
        "stored": len(stored),
        "lost": len(acknowledged - set(stored)),
        "doubled": doubled,
        "stored_not_sent": len(set(stored) - sent),
        "ratings_equal_replay": report.changed == 0 and report.chain_ok and report.pending == 0,
    }
