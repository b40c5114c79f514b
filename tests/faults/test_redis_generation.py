"""Redis (the Celery broker) stopped while a real worker generates, and a job made while it is away: the running
task finishes, the job made meanwhile is saved with its tasks marked "not queued yet" (no error for the admin), and
once an empty Redis is back the periodic requeue sends them and the worker makes them: each image once.

A real Celery worker (prefork, concurrency 1, with its embedded beat on a 1 s requeue period) on a Redis and a
PostgreSQL started by the tests; the tiny SDXL models."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.worker, pytest.mark.slow]

MAKE_JOB = textwrap.dedent("""
    import django, json, sys, time
    django.setup()
    from generation import services
    from generation.models import ModelVariant, Prompt
    if sys.argv[4:] == ["--wait"]:  # set up now; make the job when told (the test stops Redis meanwhile)
        print("ready", flush=True)
        sys.stdin.readline()
    variant = ModelVariant.objects.filter(name="Tiny eps").first() or services.variant_register(
        path=sys.argv[1], name="Tiny eps", defaults={"width": 256, "height": 256, "steps": 60, "sampler": "Euler"})
    prompt = Prompt.objects.create(text=sys.argv[2])
    started = time.monotonic()
    job = services.job_create(variants=[variant], prompts=[prompt], seeds=[7], steps=int(sys.argv[3]))  # sent on commit
    print(json.dumps({"job": job.pk, "seconds": round(time.monotonic() - started, 2),
                      "errors": list(job.tasks.values_list("error", flat=True))}))
""")


def _wait(predicate, timeout: float, what: str, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{log.read_text(errors='replace')[-3000:]}")


def test_generation_resumes_when_redis_comes_back_and_makes_each_image_once(drill_cluster, local_redis, tiny_models,
                                                                             tmp_path):
    import psycopg

    from generation.services.jobs import NOT_QUEUED

    db_url = drill_cluster.database()
    media = tmp_path / "media"
    env = {**os.environ, "DATABASE_URL": db_url, "REDIS_URL": local_redis.url(0), "CELERY_BROKER_URL": "",
           "CELERY_TASK_ALWAYS_EAGER": "0", "GENERATION_REQUEUE_SECONDS": "1", "MEDIA_ROOT": str(media),
           "ARENA_VAR_DIR": str(tmp_path / "var"), "GENERATION_DEVICE": "cpu", "HF_HUB_OFFLINE": "1",
           "DJANGO_SETTINGS_MODULE": "config.settings", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("CELERY_BROKER_URL")

    def query(sql: str):
        with psycopg.connect(db_url.replace("postgres://", "postgresql://")) as conn:
            return conn.execute(sql).fetchall()

    def make_job(prompt: str, steps: int) -> dict:
        done = subprocess.run([sys.executable, "-c", MAKE_JOB, tiny_models.eps_file, prompt, str(steps)], cwd=ROOT,
                              env=env, check=True, timeout=120, capture_output=True, text=True)
        return json.loads(done.stdout.strip().splitlines()[-1])

    log = tmp_path / "worker.log"
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-B", "-s", str(tmp_path / "beat-schedule"),
         "--scheduler", "celery.beat:PersistentScheduler", "-Q", "default,gpu", "--pool", "prefork",
         "--concurrency", "1", "--prefetch-multiplier", "1", "--without-gossip", "--without-mingle",
         "--without-heartbeat", "-l", "INFO"], cwd=ROOT, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    maker = None
    try:
        maker = subprocess.Popen([sys.executable, "-c", MAKE_JOB, tiny_models.eps_file, "1girl, solo, from side", "4",
                                  "--wait"], cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        first = make_job("1girl, solo, smile", 16)  # registers the model
        assert maker.stdout.readline().strip() == "ready"
        _wait(lambda: query(f"select id from generation_generationtask where job_id={first['job']} and status='running'"),
              120, "the worker to start the first job", log)
        local_redis.stop()  # the broker goes away while the worker loads the model and generates
        assert query(f"select status from generation_generationtask where job_id={first['job']}") == [("running",)]
        out, _ = maker.communicate("go\n", timeout=60)
        second = json.loads(out.strip().splitlines()[-1])
        assert second["errors"] == [NOT_QUEUED]  # saved, and it says why it waits; no error raised
        assert second["seconds"] < 15
        assert query(f"select status from generation_generationjob where id={second['job']}") == [("pending",)]
        local_redis.start()  # empty: what was queued in it is gone
        _wait(lambda: query("select count(*) from generation_generationjob where status in ('done', 'failed') "
                            f"and id in ({first['job']}, {second['job']})") == [(2,)], 180,
              "both jobs to finish", log)
        jobs = query(f"select id, status from generation_generationjob where id in ({first['job']}, {second['job']}) "
                     "order by id")
        tasks = query("select job_id, status, attempts, error, image_id from generation_generationtask "
                      f"where job_id in ({first['job']}, {second['job']}) order by job_id")
        images = query("select variant_id, prompt_id, settings_key, file, voter_file, thumb from generation_image "
                       "where job_id is not null")
        cells = {row[:3] for row in images}
        files = [p for p in media.rglob("*") if p.is_file()]
        intact = sum(all((media / name).is_file() and (media / name).stat().st_size > 0 for name in row[3:])
                     for row in images)
        line = {"scenario": "redis-stop-generation", "sent": 2,
                "acknowledged": sum(1 for t in tasks if t[1] == "done"), "stored": intact,
                "lost": sum(1 for t in tasks if t[1] == "done" and t[4] is None), "doubled": len(images) - len(cells),
                "queued_while_down": 1, "files": len(files)}
        print(json.dumps(line))
        assert [status for _, status in jobs] == ["done", "done"], log.read_text(errors="replace")[-3000:]
        assert [(t[1], t[2], t[3]) for t in tasks] == [("done", 1, ""), ("done", 1, "")]  # each made once
        assert line["acknowledged"] == line["stored"] == 2 and line["lost"] == line["doubled"] == 0
        assert len(files) == 2 * 3
    finally:
        if maker is not None and maker.poll() is None:
            maker.kill()
            maker.wait(timeout=10)
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(timeout=10)
