"""Training runs end to end on the tiny models (tasks run eagerly here; the real worker is in test_run_worker):
validation before anything is queued, a run trained in time slices that equals one trained at once, progress on
the row, cancel and resume, a refused resume, and the result enrolled as the parent's child."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ValidationError

from generation.models import GenerationJob, ModelVariant
from tests.training.runs_helpers import SMALL, register_parent, voted_dataset
from training import services
from training.models import PreferenceDataset, TrainingRun

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _training_dir(settings, tmp_path):
    settings.TRAINING_DIR = tmp_path / "training"
    settings.TRAIN_MIN_DATASET_ROWS = 2


def _messages(exc) -> str:
    return " | ".join(f"{k}: {m}" for k, ms in exc.value.message_dict.items() for m in ms)


def _run(run_id: int) -> TrainingRun:
    return TrainingRun.objects.get(pk=run_id)


def _execute(callbacks):
    for callback in list(callbacks):
        callback()


def test_validation_before_queueing_says_what_is_wrong(tiny_models, settings, django_capture_on_commit_callbacks):
    parent = register_parent(tiny_models)
    dataset = voted_dataset(polls=2)
    settings.TRAIN_MIN_DATASET_ROWS = 50
    with pytest.raises(ValidationError) as exc:
        services.run_create(method="dpo", dataset=dataset, parent=parent, config=SMALL)
    assert "the dataset has 2 pair rows" in _messages(exc) and "needs at least 50" in _messages(exc)
    settings.TRAIN_MIN_DATASET_ROWS = 2
    with pytest.raises(ValidationError) as exc:
        services.run_create(method="dpo", dataset=dataset, parent=None, config=SMALL)
    assert "needs a parent model" in _messages(exc)
    with pytest.raises(ValidationError) as exc:
        services.run_create(method="dpo", dataset=None, parent=parent, config=SMALL)
    assert "pick a preference dataset" in _messages(exc)
    ModelVariant.objects.filter(pk=parent.pk).update(health="failing", health_message="load failed: bad file")
    parent.refresh_from_db()
    with pytest.raises(ValidationError) as exc:
        services.run_create(method="dpo", dataset=dataset, parent=parent, config=SMALL)
    assert "is failing: load failed: bad file" in _messages(exc)
    vpred = register_parent(tiny_models, "v")
    with pytest.raises(ValidationError) as exc:
        services.run_create(method="sft", dataset=dataset, parent=vpred, config={**SMALL, "noise_offset": 0.05})
    assert "noise_offset is an epsilon-only setting" in _messages(exc)
    with pytest.raises(ValidationError) as exc:
        services.run_create(method="dpo", dataset=dataset, parent=vpred, config={**SMALL, "warp_speed": 9})
    assert "unknown TrainConfig setting(s): warp_speed" in _messages(exc)
    child = ModelVariant.objects.create(name="a fine-tune", kind="finetune", source_type="diffusers",
                                        source_path=tiny_models.eps_dir, parent=vpred)
    with pytest.raises(ValidationError) as exc:
        services.run_create(method="dpo", dataset=dataset, parent=child, config=SMALL)
    assert "is a fine-tune" in _messages(exc)
    empty = PreferenceDataset.objects.create(path=dataset.path + ".gone", sha256="0" * 64, rows=0)
    with pytest.raises(ValidationError) as exc:
        services.run_create(method="reward", dataset=empty, config={"open_clip_dir": "/nowhere"})
    assert "dataset file" in _messages(exc) and "open_clip_dir /nowhere: no such folder" in _messages(exc)
    assert TrainingRun.objects.count() == 0


def test_a_run_trained_in_time_slices_equals_one_trained_at_once_and_its_child_meets_the_parent(
        tiny_models, settings, django_capture_on_commit_callbacks):
    from training.trainers.cli import load_run
    from training.trainers.run import train_lora
    from tests.training.test_loop import relative_difference

    parent = register_parent(tiny_models)
    dataset = voted_dataset(parent=parent)
    settings.TRAIN_TIME_SLICE_SECONDS = 1  # each slice pauses after its first step, at a checkpoint
    with django_capture_on_commit_callbacks(execute=False) as queued:
        run = services.run_create(method="dpo", dataset=dataset, parent=parent, config=SMALL)
    assert _run(run.pk).status == "queued" and len(queued) == 1
    with django_capture_on_commit_callbacks(execute=False) as later:
        _execute(queued)  # slice 1
    for _ in range(5):
        if not later:
            break
        with django_capture_on_commit_callbacks(execute=False) as nxt:
            _execute(later)
        later = nxt
    run = _run(run.pk)
    assert run.status == "done", run.error
    assert run.slices == 3 and run.step == 3 == run.max_steps
    assert [m["step"] for m in run.metrics] == [1, 2, 3] and all("loss" in m for m in run.metrics)
    # the same settings trained in one go give the same adapter (float tolerance)
    config, parent_spec, paths = load_run(services.run_spec(run))
    once = train_lora(config, parent_spec, paths.__class__(paths.dataset, str(settings.TRAINING_DIR / "once" / "w"),
                                                           str(settings.TRAINING_DIR / "once" / "o")), on_progress=lambda e: None)
    assert relative_difference(once.lora_file, run.output_files["lora_file"]) < 1e-4
    # the result: a fine-tune of the parent with the LoRA, its card, and a job on the parent's fixed prompts
    child = run.result_variant
    assert child is not None and child.parent_id == parent.pk and child.kind == "finetune"
    assert [lora.path for lora in child.loras.all()] == [run.output_files["lora_file"]]
    assert child.card["method"] == "dpo" and child.card["dataset_sha256"] == dataset.sha256 and child.card["steps"] == 3
    assert "loss" in child.card["metrics"]
    job = GenerationJob.objects.get(pk=run.registration_job_id)
    parent_keys = set(parent.images.values_list("prompt_id", "settings_key"))
    assert set(job.tasks.values_list("prompt_id", "settings_key")) == parent_keys and job.tasks.get().variant_id == child.pk
    # the job's message was queued with the rest and ran: the child's image pairs with the parent's for a duel
    assert set(child.images.values_list("prompt_id", "settings_key")) == parent_keys
    # and the matchmaker draws that duel for voters: the child meets its parent in the arena
    import random

    from arena import services as arena
    from arena.models import Mode

    family = set(parent.images.values_list("id", flat=True)) | set(child.images.values_list("id", flat=True))
    drawn = [arena.poll_create(mode=Mode.FIXED, voter_key=f"{i:032x}", rng=random.Random(i)).ticket.image_ids
             for i in range(40)]
    meetings = [ids for ids in drawn if set(ids) <= family]
    assert meetings and all(len(set(ids)) == 2 for ids in meetings), drawn


def test_cancel_stops_a_queued_run_and_resume_finishes_it(tiny_models, django_capture_on_commit_callbacks):
    parent = register_parent(tiny_models)
    dataset = voted_dataset()
    with django_capture_on_commit_callbacks(execute=False) as queued:
        run = services.run_create(method="sft", dataset=dataset, parent=parent, config={**SMALL, "max_train_steps": 2})
    services.run_cancel(run=run)
    _execute(queued)  # the message arrives after the cancel: nothing is claimed
    assert _run(run.pk).status == "cancelled" and _run(run.pk).step == 0
    with pytest.raises(ValidationError, match="only a queued or running run"):
        services.run_cancel(run=_run(run.pk))
    with django_capture_on_commit_callbacks(execute=False) as again:
        services.run_resume(run=_run(run.pk))
    with django_capture_on_commit_callbacks(execute=False):
        _execute(again)
    assert _run(run.pk).status == "done" and _run(run.pk).step == 2


def test_a_cancel_while_training_stops_the_trainer_at_its_next_event(tiny_models, django_capture_on_commit_callbacks):
    parent = register_parent(tiny_models)
    dataset = voted_dataset()
    with django_capture_on_commit_callbacks(execute=False):
        run = services.run_create(method="dpo", dataset=dataset, parent=parent, config=SMALL)
    original = services.runs.run_progress
    seen = []

    def progress_then_cancel(**kwargs):
        seen.append(kwargs["event"]["event"])
        if kwargs["event"]["event"] == "step":
            TrainingRun.objects.filter(pk=run.pk).update(status="cancelled")
        return original(**kwargs)

    import training.services.execute as execute

    execute.run_progress, saved = progress_then_cancel, execute.run_progress
    try:
        outcome = services.run_execute(run_id=run.pk, token="t1")
    finally:
        execute.run_progress = saved
    assert outcome.status == "cancelled" and seen.count("step") == 1
    assert _run(run.pk).status == "cancelled" and not _run(run.pk).output_files


def test_a_resume_with_other_max_steps_is_refused_with_the_reason(tiny_models, settings, django_capture_on_commit_callbacks):
    parent = register_parent(tiny_models)
    dataset = voted_dataset()
    with django_capture_on_commit_callbacks(execute=False):
        run = services.run_create(method="dpo", dataset=dataset, parent=parent, config=SMALL)
    settings.TRAIN_TIME_SLICE_SECONDS = 1
    with django_capture_on_commit_callbacks(execute=False):
        assert services.run_execute(run_id=run.pk, token="slice-1").status == "paused"
    TrainingRun.objects.filter(pk=run.pk).update(config={**_run(run.pk).config, "max_train_steps": 9})
    with django_capture_on_commit_callbacks(execute=False):
        outcome = services.run_execute(run_id=run.pk, token="slice-2")
    assert outcome.status == "failed"
    run = _run(run.pk)
    assert run.status == "failed" and "cannot resume from the checkpoint at step 1" in run.error
    assert "max_train_steps 3 -> 9" in run.error


def test_a_redelivered_slice_takes_its_claim_back_and_another_message_does_not(tiny_models, django_capture_on_commit_callbacks):
    parent = register_parent(tiny_models)
    dataset = voted_dataset()
    with django_capture_on_commit_callbacks(execute=False):
        run = services.run_create(method="dpo", dataset=dataset, parent=parent, config=SMALL)
    assert services.run_claim(run_id=run.pk, token="m1") is not None
    assert services.run_claim(run_id=run.pk, token="m2") is None  # held by m1
    assert services.run_claim(run_id=run.pk, token="m1").attempts == 2  # m1 redelivered
    for _ in range(3):
        services.run_claim(run_id=run.pk, token="m1")
    assert services.run_claim(run_id=run.pk, token="m1") is None
    assert _run(run.pk).status == "failed" and "gave up after 5 attempts" in _run(run.pk).error


def test_a_reward_run_records_its_model_file_and_held_out_agreement(tmp_path, django_capture_on_commit_callbacks):
    from generation.scoring.openclip import tiny_open_clip_write

    clip = str(tiny_open_clip_write(tmp_path / "clip", seed=0))
    dataset = voted_dataset(polls=8)
    with django_capture_on_commit_callbacks(execute=True):
        run = services.run_create(method="reward", dataset=dataset,
                                  config={"open_clip_dir": clip, "epochs": 20, "heldout_fraction": 0.25})
    run = _run(run.pk)
    assert run.status == "done", run.error
    assert run.parent is None and run.result_variant is None and run.max_steps == 20 == run.step
    from pathlib import Path

    assert Path(run.output_files["model_file"]).is_file()
    from training.trainers.dataset import read_dataset
    from training.trainers.reward import heldout_polls

    ds = read_dataset(dataset.path)
    held = heldout_polls(ds.columns["poll_id"], 0.25, 0)
    tie_poll = ds.columns["poll_id"][ds.columns["kind"].index("tie")]
    # 8 pairs and a tie: the tie trains (as 0.5) but is never a held-out pair
    assert run.result["train_pairs"] + run.result["heldout_pairs"] == (8 if tie_poll in held else 9)
    assert run.result["heldout_pairs"] == sum(p in held for p, k in zip(ds.columns["poll_id"], ds.columns["kind"]) if k == "pair")
    assert 0 <= run.result["heldout_ci_low"] <= run.result["heldout_ci_high"] <= 1
    assert [m["step"] for m in run.metrics] == list(range(1, 21, 2))  # the trainer reports every tenth of the epochs


def test_a_slice_longer_than_the_visibility_timeout_stops_start_up():
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "CELERY_VISIBILITY_TIMEOUT": "600", "TRAIN_TIME_SLICE_SECONDS": "600",
           "DJANGO_SETTINGS_MODULE": "config.settings", "PYTHONPATH": str(root)}
    out = subprocess.run([sys.executable, "-c", "import django; django.setup()"], cwd=root, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "must be below CELERY_VISIBILITY_TIMEOUT (600)" in out.stderr
    bad = subprocess.run([sys.executable, "-c", "import django; django.setup()"], cwd=root, text=True, timeout=120,
                         env={**env, "CELERY_VISIBILITY_TIMEOUT": "21600", "TRAIN_LAUNCHER": "torchrun"},
                         capture_output=True)
    assert bad.returncode != 0 and "TRAIN_LAUNCHER='torchrun' must be one of inprocess, accelerate" in bad.stderr


def test_manage_py_train_runs_a_queued_run_to_its_end_in_process(tiny_models, django_capture_on_commit_callbacks, capsys):
    from django.core.management import CommandError, call_command

    parent = register_parent(tiny_models)
    dataset = voted_dataset()
    with django_capture_on_commit_callbacks(execute=False):
        run = services.run_create(method="sft", dataset=dataset, parent=parent, config={**SMALL, "max_train_steps": 2})
    with django_capture_on_commit_callbacks(execute=False):
        call_command("train", str(run.pk))
    assert "done at step 2/2" in capsys.readouterr().out
    run = _run(run.pk)
    assert run.status == "done" and run.result_variant.parent_id == parent.pk
    with pytest.raises(CommandError, match="is done"):
        call_command("train", str(run.pk))  # nothing to claim: it says so
    with pytest.raises(CommandError, match="no training run 999"):
        call_command("train", "999")


def test_a_first_caption_generation_would_refuse_gives_no_samples_instead_of_failed_ones(
        tiny_models, monkeypatch, django_capture_on_commit_callbacks):
    from training.trainers import dataset as trainers_dataset

    parent = register_parent(tiny_models)
    dataset = voted_dataset()
    monkeypatch.setattr(trainers_dataset, "first_caption", lambda path: "1girl, <lora:style:0.8>")
    with django_capture_on_commit_callbacks(execute=False):
        run = services.run_create(method="sft", dataset=dataset, parent=parent, config=SMALL)
    assert run.status == "queued" and run.config["sample_prompts"] == ""
    monkeypatch.setattr(trainers_dataset, "first_caption", lambda path: "1girl, red hair")
    with django_capture_on_commit_callbacks(execute=False):
        run = services.run_create(method="sft", dataset=dataset, parent=parent, config=SMALL)
    assert run.config["sample_prompts"] == "1girl, red hair"
