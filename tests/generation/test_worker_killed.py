"""A real Celery worker (prefork, concurrency 1) against real Redis, its pool process killed in the middle of
generating: the message is rejected back to the queue (acks_late + reject_on_worker_lost), redelivered with the
same id, the claim is taken back, and the image is stored exactly once.

Needs Redis at ARENA_TEST_REDIS_URL (``make test`` starts one); skipped with the reason otherwise. Everything
runs in subprocesses against a file SQLite database of its own, on a queue of its own."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.worker, pytest.mark.slow]


@pytest.fixture(scope="session")
def redis_url() -> str:
    """Checked before the tiny models are built, so a missing Redis skips at once."""
    url = os.environ.get("ARENA_TEST_REDIS_URL", "")
    if not url:
        pytest.skip("ARENA_TEST_REDIS_URL is not set: no Redis to run a real Celery worker against")
    try:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except Exception as exc:  # noqa: BLE001 - any failure means no usable Redis
        pytest.skip(f"Redis at ARENA_TEST_REDIS_URL={url} is not reachable: {exc}")
    return url


SETUP = textwrap.dedent("""
    import django, json, sys
    django.setup()
    from config.celery import app
    app.conf.task_routes = {"generation.*": {"queue": sys.argv[1]}}
    from generation import services
    from generation.models import Prompt
    variant = services.variant_register(path=sys.argv[2], name="Tiny eps", defaults={
        "width": 256, "height": 256, "steps": int(sys.argv[3]), "sampler": "Euler"})
    prompt = Prompt.objects.create(text="1girl, solo, smile")
    job = services.job_create(variants=[variant], prompts=[prompt], seeds=[7])  # enqueued on commit
    print(json.dumps({"job": job.pk}))
""")


def _query(db: Path, sql: str):
    with sqlite3.connect(db, timeout=10) as connection:
        return connection.execute(sql).fetchall()


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def test_worker_killed_mid_task_generates_the_image_exactly_once(redis_url, tiny_models, tmp_path):
    import psutil

    queue = f"test-gpu-{uuid.uuid4().hex[:8]}"
    db = tmp_path / "db.sqlite3"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{db}", "CELERY_BROKER_URL": redis_url, "REDIS_URL": "",
           "CELERY_TASK_ALWAYS_EAGER": "0", "MEDIA_ROOT": str(tmp_path / "media"), "ARENA_VAR_DIR": str(tmp_path / "var"),
           "GENERATION_DEVICE": "cpu", "HF_HUB_OFFLINE": "1", "DJANGO_SETTINGS_MODULE": "config.settings",
           "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=300)
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queue, "--pool", "prefork", "--concurrency", "1",
         "--prefetch-multiplier", "1", "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "INFO"],
        cwd=ROOT, env=env, stdout=open(tmp_path / "worker.log", "wb"), stderr=subprocess.STDOUT)
    try:
        subprocess.run([sys.executable, "-c", SETUP, queue, tiny_models.eps_file, "60"], cwd=ROOT, env=env, check=True,
                       timeout=120, capture_output=True)
        running = _wait(lambda: _query(db, "select id, claim_token from generation_generationtask where status='running'"),
                        180, "the worker to claim the task")
        task_id, token = running[0]
        time.sleep(1.0)  # into the model load / denoising loop
        assert _query(db, "select count(*) from generation_image") == [(0,)], "the image was made before the kill"
        children = psutil.Process(worker.pid).children(recursive=True)
        assert children, "the prefork worker has no pool process"
        for child in children:
            os.kill(child.pid, signal.SIGKILL)  # the pool process dies mid-task; the worker main process lives
        done = _wait(lambda: _query(db, f"select status, attempts, claim_token, image_id from generation_generationtask "
                                        f"where id={task_id} and status in ('done', 'failed')"), 240,
                     "the redelivered message to finish the task")
        status, attempts, final_token, image_id = done[0]
        log = (tmp_path / "worker.log").read_text(errors="replace")
        assert status == "done", log[-3000:]
        assert attempts == 2 and final_token == token  # taken back by the same message, redelivered
        assert _query(db, "select count(*) from generation_image") == [(1,)]
        assert _query(db, "select count(*) from generation_image where id=%d" % image_id) == [(1,)]
        files = [p for p in (tmp_path / "media").rglob("*") if p.is_file()]
        assert len(files) == 3  # original, voter copy, thumbnail: nothing from the killed attempt
        # the job's status follows its tasks right after the task's own commit (not inside it: two workers finishing
        # a job's last two tasks would each see the other's still open), so it may trail the task by a moment
        assert _wait(lambda: _query(db, "select status from generation_generationjob where status='done'"), 30,
                     "the job to be marked done") == [("done",)]
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(timeout=10)
