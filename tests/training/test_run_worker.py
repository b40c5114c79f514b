"""Training runs under real processes: a Celery worker on Redis whose pool process is killed mid-run (the slice's
message is redelivered with the same id, the claim is taken back, the trainer resumes from its checkpoint, and the
run finishes once with the weights of an uninterrupted run), and ``manage.py train RUN_ID`` under
``TRAIN_LAUNCHER=accelerate`` with 2 CPU processes. Each runs in subprocesses on a SQLite file of its own."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.generation.test_worker_killed import redis_url  # noqa: F401 - the fixture (skips without Redis)

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow]
CONFIG = dict(max_train_steps=12, train_batch_size=2, resolution=64, learning_rate=1e-3, network_dim=4,
              network_alpha=2.0, checkpointing_steps=2, max_grad_norm=0.0)


def _env(tmp_path, **extra) -> dict:
    return {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", "REDIS_URL": "",
            "MEDIA_ROOT": str(tmp_path / "media"), "ARENA_VAR_DIR": str(tmp_path / "var"),
            "ARENA_TRAINING_DIR": str(tmp_path / "training"), "TRAIN_MIN_DATASET_ROWS": "2",
            "GENERATION_DEVICE": "cpu", "HF_HUB_OFFLINE": "1", "DJANGO_SETTINGS_MODULE": "config.settings",
            "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **extra}


def _query(db: Path, sql: str):
    with sqlite3.connect(db, timeout=10) as connection:
        return connection.execute(sql).fetchall()


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _setup(env, queue: str, tiny_models, config: dict) -> dict:
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=300)
    out = subprocess.run([sys.executable, str(ROOT / "tests" / "training" / "worker_setup.py"), queue,
                          tiny_models.eps_dir, json.dumps(config)], cwd=ROOT, env=env, check=True, timeout=300,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _uninterrupted(spec: dict, tmp_path: Path, name: str) -> str:
    from training.trainers.cli import load_run
    from training.trainers.config import RunPaths
    from training.trainers.run import train_lora

    config, parent, paths = load_run(spec)
    return train_lora(config, parent, RunPaths(paths.dataset, str(tmp_path / name / "work"), str(tmp_path / name / "out")),
                      on_progress=lambda event: None).lora_file


@pytest.mark.worker
def test_a_worker_killed_mid_run_resumes_it_and_it_finishes_once_like_an_uninterrupted_run(redis_url, tiny_models,  # noqa: F811
                                                                                           tmp_path):
    import psutil

    from tests.training.test_loop import relative_difference

    queue = f"test-train-{uuid.uuid4().hex[:8]}"
    db = tmp_path / "db.sqlite3"
    env = _env(tmp_path, CELERY_BROKER_URL=redis_url, CELERY_TASK_ALWAYS_EAGER="0")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queue, "--pool", "prefork", "--concurrency", "1",
         "--prefetch-multiplier", "1", "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "INFO"],
        cwd=ROOT, env=env, stdout=open(tmp_path / "worker.log", "wb"), stderr=subprocess.STDOUT)
    try:
        made = _setup(env, queue, tiny_models, CONFIG)
        run_id = made["run"]
        checkpoints = Path(made["spec"]["paths"]["work_dir"]) / "checkpoints"
        # past a checkpoint and into the steps after it
        _wait(lambda: _query(db, f"select step from training_trainingrun where id={run_id} and status='running' "
                                 f"and step >= 3 and step < {CONFIG['max_train_steps'] - 2}")
              and any(p.name.startswith("step-") for p in checkpoints.iterdir()), 300, "the run to pass a checkpoint")
        (token,), = _query(db, f"select claim_token from training_trainingrun where id={run_id}")
        children = psutil.Process(worker.pid).children(recursive=True)
        assert children, "the prefork worker has no pool process"
        for child in children:
            os.kill(child.pid, signal.SIGKILL)  # the pool process dies mid-run; the worker main process lives
        killed_at = _query(db, f"select step from training_trainingrun where id={run_id}")[0][0]
        assert killed_at < CONFIG["max_train_steps"], "the run finished before the kill"
        done = _wait(lambda: _query(db, f"select status, step, max_steps, attempts, slices, claim_token, metrics, "
                                        f"output_files, result_variant_id, error from training_trainingrun "
                                        f"where id={run_id} and status in ('done', 'failed')"), 400,
                     "the redelivered slice to finish the run")
        status, step, max_steps, attempts, slices, final_token, metrics, files, child_id, error = done[0]
        log = (tmp_path / "worker.log").read_text(errors="replace")
        assert status == "done", (error, log[-3000:])
        assert step == max_steps == CONFIG["max_train_steps"]
        assert attempts == 2 and final_token == token and slices == 1  # the same message, taken back once
        assert [m["step"] for m in json.loads(metrics)] == list(range(1, step + 1))  # each step once
        assert "Loading states from" in log  # it resumed from a checkpoint, not from scratch
        # finished once: one registered child, one generation job for it
        assert _query(db, "select count(*) from generation_modelvariant where kind='finetune'") == [(1,)]
        assert _query(db, f"select parent_id from generation_modelvariant where id={child_id}")[0][0] is not None
        assert _query(db, "select count(*) from generation_generationjob") == [(1,)]
        lora = json.loads(files)["lora_file"]
        assert relative_difference(_uninterrupted(made["spec"], tmp_path, "once"), lora) < 1e-4
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(timeout=10)


def test_manage_py_train_under_accelerate_launch_with_two_cpu_processes(tiny_models, tmp_path):
    """TRAIN_LAUNCHER=accelerate: ``manage.py train RUN_ID`` starts ``accelerate launch --num_processes 2 ...
    manage.py train RUN_ID --process``; the main process's lines are relayed into the row; the run is registered;
    2 processes at batch 1 train like 1 process at batch 2."""
    from tests.training.test_loop import relative_difference
    from training.trainers.kohya import read_metadata

    config = {**CONFIG, "max_train_steps": 3, "train_batch_size": 1}
    env = _env(tmp_path, CELERY_BROKER_URL="memory://", CELERY_TASK_ALWAYS_EAGER="0", TRAIN_LAUNCHER="accelerate",
               TRAIN_NUM_PROCESSES="2", TRAIN_ACCELERATE_ARGS="--mixed_precision,no")
    made = _setup(env, "unused", tiny_models, config)
    run_id = made["run"]
    out = subprocess.run([sys.executable, "manage.py", "train", str(run_id)], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, (out.stdout[-2000:], out.stderr[-3000:])
    db = tmp_path / "db.sqlite3"
    (status, step, files, metrics, child), = _query(
        db, f"select status, step, output_files, metrics, result_variant_id from training_trainingrun where id={run_id}")
    assert status == "done" and step == 3 and child is not None
    assert [m["step"] for m in json.loads(metrics)] == [1, 2, 3]
    lora = json.loads(files)["lora_file"]
    assert read_metadata(lora)["ss_total_batch_size"] == "2"
    one = _uninterrupted({**made["spec"], "config": {**made["spec"]["config"], "train_batch_size": 2}}, tmp_path, "one")
    assert relative_difference(one, lora) < 0.01  # the tolerance test_loop measured for this layout
