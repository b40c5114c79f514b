"""Running one time slice of a training run: claim it, start ``manage.py train RUN_ID`` (in this process, or under
``accelerate launch`` when TRAIN_LAUNCHER=accelerate), relay the trainer's progress lines into the run row, and
then finish it (registering the result), queue its next slice, or fail it with the trainer's one-line reason.

The trainer (training.trainers) never touches the database: it writes files and progress events; the relay
(``run_progress``) writes them to the row and stops the trainer when the run was cancelled."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from training.models import TrainingRun
from training.services.registration import run_register_result, run_register_reward_judge
from training.services.runs import _held, _one_line, run_claim, run_fail, run_pause, run_progress, run_spec

logger = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[2]
EXIT_DONE, EXIT_ERROR, EXIT_PAUSED = 0, 2, 3


class RunCancelled(Exception):
    """The run was cancelled (or taken by another claim) while this slice trained."""


@dataclass(frozen=True)
class SliceOutcome:
    status: str  # done | paused | failed | cancelled | skipped
    message: str = ""


def slice_train(*, run: TrainingRun, on_progress, time_slice_s: float | None) -> str:
    """Train ``run`` in this process until done or the slice ends: "done" or "paused"; TrainingError for a bad
    setting, file or resume. Under ``accelerate launch`` every process calls this (only the main one reports)."""
    from training.trainers.cli import load_run
    from training.trainers.run import train

    config, parent, paths = load_run(run_spec(run))
    result = train(config, paths, parent=parent, on_progress=on_progress, time_slice_s=time_slice_s)
    return getattr(result, "status", "done")


def _relay(run_id: int, token: str):
    def relay(event: dict) -> None:
        if not run_progress(run_id=run_id, token=token, event=event):
            raise RunCancelled(f"run {run_id} is no longer held by this slice")
    return relay


def _inprocess(run: TrainingRun, token: str, time_slice_s: float | None) -> SliceOutcome:
    from training.trainers.errors import TrainingError

    try:
        status = slice_train(run=run, on_progress=_relay(run.pk, token), time_slice_s=time_slice_s)
    except TrainingError as exc:
        return SliceOutcome("failed", str(exc))
    except (OSError, ValueError) as exc:
        return SliceOutcome("failed", f"{type(exc).__name__}: {exc}")
    return SliceOutcome(status)


def accelerate_command(run_id: int, time_slice_s: float | None) -> list[str]:
    """``accelerate launch --num_processes N ... manage.py train RUN_ID --process`` (one slice)."""
    n = int(settings.TRAIN_NUM_PROCESSES)
    accelerate = Path(sys.executable).with_name("accelerate")
    cmd = [str(accelerate) if accelerate.exists() else "accelerate", "launch", "--num_processes", str(n),
           "--num_machines", "1", "--dynamo_backend", "no"]
    if n > 1 and "--multi_gpu" not in settings.TRAIN_ACCELERATE_ARGS:
        cmd.append("--multi_gpu")  # torch.distributed (gloo on CPUs, NCCL on GPUs)
    cmd += [*settings.TRAIN_ACCELERATE_ARGS, str(ROOT / "manage.py"), "train", str(run_id), "--process"]
    if time_slice_s is not None:
        cmd += ["--time-slice", str(time_slice_s)]
    return cmd


def _die_with_parent() -> None:
    """In the launcher's process before exec (Linux): SIGTERM when the worker process that started it dies, so a
    killed worker leaves no orphan training on beside the redelivered slice (torchrun passes it to the ranks)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _accelerate(run: TrainingRun, token: str, time_slice_s: float | None) -> SliceOutcome:
    """Start the launcher and relay the JSON lines its main process prints; stop it when the run is cancelled."""
    relay = _relay(run.pk, token)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(accelerate_command(run.pk, time_slice_s), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
    error = ""
    try:
        for line in proc.stdout:
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") == "error":
                error = event.get("message", "")
                continue
            relay(event)
        code = proc.wait()
    except RunCancelled:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
        raise
    except BaseException:  # the slice's time limit, a shutdown: the launcher goes with it
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    stderr = proc.stderr.read() if proc.stderr else ""
    if code == EXIT_DONE:
        return SliceOutcome("done")
    if code == EXIT_PAUSED:
        return SliceOutcome("paused")
    tail = _one_line(stderr.strip().splitlines()[-1] if stderr.strip() else "", 300)
    return SliceOutcome("failed", error or f"accelerate launch exited with {code}: {tail}")


def _result(run: TrainingRun) -> dict:
    from training.trainers.run import RESULT_FILE

    path = Path(run_spec(run)["paths"]["output_dir"]) / RESULT_FILE
    return json.loads(path.read_text())


def run_finish(*, run: TrainingRun, token: str) -> SliceOutcome:
    """Record a finished run's files and metrics and register its result, once: the conditional update on the
    claim makes a second delivery of the same slice a no-op."""
    result = _result(run)
    if run.method == TrainingRun.Method.REWARD:
        files = {"model_file": result.get("model_file", ""), "result_file": result.get("result_file", "")}
        metrics = {k: result[k] for k in ("train_pairs", "heldout_pairs", "heldout_acc", "heldout_ci_low",
                                           "heldout_ci_high", "train_acc") if k in result}
        steps = run.max_steps
    else:
        files = {"lora_file": result["lora_file"], "result_file": result["result_file"]}
        metrics, steps = dict(result.get("metrics", {})), int(result["steps"])
    with transaction.atomic():
        if not _held(run.pk, token).update(status=TrainingRun.Status.DONE, output_files=files, result=metrics,
                                           step=steps, eta_seconds=0, finished_at=timezone.now()):
            return SliceOutcome("skipped")
        run.refresh_from_db()
        if run.method == TrainingRun.Method.REWARD:
            message = run_register_reward_judge(run=run)
        else:
            message = run_register_result(run=run)
        if message:
            TrainingRun.objects.filter(id=run.pk).update(error=_one_line(message))
    return SliceOutcome("done")


def run_execute(*, run_id: int, token: str, worker: str = "", time_slice_s: float | None = None) -> SliceOutcome:
    """One slice of a run (see the module docstring). ``time_slice_s`` None: TRAIN_TIME_SLICE_SECONDS."""
    run = run_claim(run_id=run_id, token=token, worker=worker)
    if run is None:
        return SliceOutcome("skipped")
    slice_s = float(settings.TRAIN_TIME_SLICE_SECONDS if time_slice_s is None else time_slice_s)
    started = time.time()
    launcher = _accelerate if settings.TRAIN_LAUNCHER == "accelerate" else _inprocess
    try:
        outcome = launcher(run, token, slice_s)
    except RunCancelled:
        return SliceOutcome("cancelled")
    except Exception as exc:  # a bug or a broken file: the run says why, the worker goes on
        logger.exception("training run %s failed", run_id)
        run_fail(run_id=run_id, token=token, error=f"{type(exc).__name__}: {exc}")
        return SliceOutcome("failed", str(exc))
    logger.info("training run %s: slice %s after %.1f s", run_id, outcome.status, time.time() - started)
    if outcome.status == "failed":
        run_fail(run_id=run_id, token=token, error=outcome.message)
        return outcome
    if outcome.status == "paused":
        run_pause(run_id=run_id, token=token)
        return outcome
    return run_finish(run=run, token=token)
