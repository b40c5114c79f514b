"""The staff pages of training: the link, datasets, scheduling with clear errors, watching, cancel and resume, the
loss plot, enrolling a LoRA file (and refusing a bad one), and the family tree on the model page."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile

from arena.models import Mode
from generation.models import GenerationJob, ModelVariant
from tests.arena.factories import make_variant
from tests.arena.votelog import cast
from tests.training.runs_helpers import SMALL, register_parent, voted_dataset
from training.models import PreferenceDataset, TrainingRun

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _training_dir(settings, tmp_path):
    settings.TRAINING_DIR = tmp_path / "training"
    settings.TRAIN_MIN_DATASET_ROWS = 2


@pytest.fixture
def staff(client):
    user = User.objects.create_user("admin", password="pw", is_staff=True)
    client.force_login(user)
    return client


def test_training_is_staff_only_and_linked_for_staff(client):
    assert client.get("/training/").status_code == 302  # to the login page
    User.objects.create_user("voter", password="pw")
    client.login(username="voter", password="pw")
    assert client.get("/training/").status_code == 403
    assert b'href="/training/"' not in client.get("/leaderboard/").content


def test_staff_see_the_link_and_every_page(staff):
    page = staff.get("/training/")
    assert page.status_code == 200 and b"No runs yet" in page.content
    assert b'href="/training/"' in page.content
    for url in ("/training/datasets/", "/training/runs/new/", "/training/runs/new/?method=reward",
                "/training/runs/new/?method=sft", "/training/loras/"):
        assert staff.get(url).status_code == 200, url


def test_the_schedule_form_shows_each_methods_defaults_with_help(staff):
    dpo = staff.get("/training/runs/new/?method=dpo").content.decode()
    assert 'name="beta_dpo"' in dpo and 'value="5000.0"' in dpo and "Diffusion-DPO&#x27;s β" in dpo
    assert 'name="min_snr_gamma"' not in dpo
    sft = staff.get("/training/runs/new/?method=sft").content.decode()
    assert 'name="min_snr_gamma"' in sft and "default cosine_with_restarts" in sft


def test_building_a_dataset_from_the_page(staff):
    a, b = make_variant(), make_variant()
    cast((a, b), "left", images=True)
    cast((a, b, make_variant(), make_variant()), "best", best=0, mode=Mode.FFA, images=True)
    response = staff.post("/training/datasets/", {"name": "all", "modes": ["fixed", "ffa"], "exclude_flagged": "on"})
    assert response.status_code == 302
    dataset = PreferenceDataset.objects.get()
    assert dataset.rows == 4 and dataset.counts == {"ffa_best": {"pair": 3}, "fixed_duel": {"pair": 1}}
    refused = staff.post("/training/datasets/", {"modes": ["free"]})
    assert refused.status_code == 400 and b"would be empty" in refused.content
    assert PreferenceDataset.objects.count() == 1


def test_scheduling_refuses_with_the_reason_and_queues_a_good_run(staff, tiny_models, django_capture_on_commit_callbacks):
    parent = register_parent(tiny_models, "v")
    dataset = voted_dataset()
    bad = staff.post("/training/runs/new/", {"method": "sft", "parent": parent.pk, "dataset": dataset.pk,
                                             "noise_offset": "0.1"})
    assert bad.status_code == 400 and b"noise_offset is an epsilon-only setting" in bad.content
    assert TrainingRun.objects.count() == 0
    with django_capture_on_commit_callbacks(execute=False) as queued:
        ok = staff.post("/training/runs/new/", {"method": "dpo", "parent": parent.pk, "dataset": dataset.pk,
                                                **{k: v for k, v in SMALL.items()}})
    run = TrainingRun.objects.get()
    assert ok.status_code == 302 and ok["Location"] == f"/training/runs/{run.pk}/" and len(queued) == 1
    assert run.config["max_train_steps"] == 3 and run.config["beta_dpo"] == 5000.0 and run.parent == parent
    assert run.started_by.username == "admin"
    watch = staff.get(f"/training/runs/{run.pk}/", HTTP_HX_REQUEST="true")
    assert b'hx-trigger="every 2s"' in watch.content and b"step <strong" in watch.content
    cancelled = staff.post(f"/training/runs/{run.pk}/cancel/", HTTP_HX_REQUEST="true")
    assert cancelled.status_code == 200 and TrainingRun.objects.get().status == "cancelled"
    again = staff.post(f"/training/runs/{run.pk}/cancel/")
    assert again.status_code == 302 and TrainingRun.objects.get().status == "cancelled"
    with django_capture_on_commit_callbacks(execute=False) as resumed:
        staff.post(f"/training/runs/{run.pk}/resume/")
    assert TrainingRun.objects.get().status == "queued" and len(resumed) == 1


def test_the_loss_plot_draws_the_reported_steps(staff, tiny_models):
    dataset = voted_dataset()
    run = TrainingRun.objects.create(method="reward", dataset=dataset, max_steps=3,
                                     metrics=[{"step": 1, "loss": 0.7}, {"step": 2, "loss": 0.5}])
    png = staff.get(f"/training/runs/{run.pk}/loss.png")
    assert png.status_code == 200 and png["Content-Type"] == "image/png" and png.content[:4] == b"\x89PNG"
    empty = TrainingRun.objects.create(method="reward", dataset=dataset)
    assert staff.get(f"/training/runs/{empty.pk}/loss.png").content != png.content


def test_an_admins_lora_file_is_enrolled_and_meets_its_parent(staff, tiny_models, django_capture_on_commit_callbacks):
    parent = register_parent(tiny_models)
    voted_dataset(parent=parent)  # gives the parent an image on a fixed prompt
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = staff.post("/training/loras/", {"parent": parent.pk, "name": "Tiny + admin LoRA",
                                                   "path": tiny_models.lora_kohya, "note": "trained elsewhere"})
    child = ModelVariant.objects.get(name="Tiny + admin LoRA")
    assert response.status_code == 302 and response["Location"] == f"/models/{child.pk}/"
    assert child.parent == parent and child.kind == "finetune" and child.card["source"] == "LoRA file given by an admin"
    assert child.loras.get().format == "kohya"
    job = GenerationJob.objects.get(settings__matching=parent.pk)
    assert set(job.tasks.values_list("prompt_id", "settings_key")) == set(parent.images.values_list("prompt_id", "settings_key"))
    assert len(queued) == 1
    page = staff.get(f"/models/{parent.pk}/").content.decode()
    assert "Family tree" in page and f'href="/models/{child.pk}/"' in page and "Elo 1000.0" in page
    child_page = staff.get(f"/models/{child.pk}/").content.decode()
    assert "How it was made" in child_page and "trained elsewhere" in child_page


def test_a_bad_lora_file_is_refused_with_a_clear_reason(staff, tiny_models, tmp_path):
    parent = register_parent(tiny_models)
    missing = staff.post("/training/loras/", {"parent": parent.pk, "name": "x", "path": str(tmp_path / "nope.safetensors")})
    assert missing.status_code == 400 and b"no such file or folder" in missing.content
    not_lora = staff.post("/training/loras/", {"parent": parent.pk, "name": "x",
                                               "upload": SimpleUploadedFile("x.safetensors", b"not a safetensors file")})
    assert not_lora.status_code == 400 and b"LoRA" in not_lora.content
    checkpoint = staff.post("/training/loras/", {"parent": parent.pk, "name": "x", "path": tiny_models.eps_file})
    assert checkpoint.status_code == 400 and b"no LoRA keys" in checkpoint.content
    wrong_type = staff.post("/training/loras/", {"parent": parent.pk, "name": "x",
                                                 "upload": SimpleUploadedFile("x.ckpt", b"pickle")})
    assert wrong_type.status_code == 400 and b"a LoRA file is a .safetensors file" in wrong_type.content
    assert not ModelVariant.objects.filter(name="x").exists()


def test_the_watch_page_of_a_finished_run_shows_its_curve_result_and_child(staff, tiny_models):
    parent = register_parent(tiny_models)
    dataset = voted_dataset()
    child = ModelVariant.objects.create(name="Tiny eps · DPO run", kind="finetune", parent=parent)
    run = TrainingRun.objects.create(method="dpo", parent=parent, dataset=dataset, status="done", step=3, max_steps=3,
                                     metrics=[{"step": s, "loss": 0.7 - s / 10, "lr": 0.001} for s in (1, 2, 3)],
                                     result={"loss": 0.4, "implicit_acc": 0.75}, result_variant=child,
                                     output_files={"lora_file": "/x/lora.safetensors"}, config={"max_train_steps": 3})
    page = staff.get(f"/training/runs/{run.pk}/").content.decode()
    assert "step <strong id=\"run-step\">3</strong>/3" in page and "loss 0.40000" in page
    assert f'src="/training/runs/{run.pk}/loss.png?n=3"' in page and 'hx-trigger' not in page  # done: no polling
    assert f'href="/models/{child.pk}/"' in page and "implicit_acc 0.7500" in page and "Resume" not in page
    history = staff.get("/training/").content.decode()
    assert f'href="/training/runs/{run.pk}/"' in history and "Tiny eps · DPO run" in history


def test_a_run_shows_sample_images_of_its_dataset_caption_at_its_checkpoints(staff, client, tiny_models,
                                                                             django_capture_on_commit_callbacks):
    """A run scheduled from the site samples its dataset's first caption at each checkpoint and at the end; the
    watch page shows the pictures, served to staff only, and only files of the run's own folder."""
    from training import services
    from training.trainers.dataset import first_caption

    parent = register_parent(tiny_models)
    dataset = voted_dataset(parent=parent)
    with django_capture_on_commit_callbacks(execute=True):
        run = services.run_create(method="dpo", dataset=dataset, parent=parent,
                                  config={**SMALL, "max_train_steps": 3, "sample_steps": 2})
    run.refresh_from_db()
    assert run.status == "done", run.error
    caption = first_caption(dataset.path)
    assert caption and run.config["sample_prompts"] == caption
    assert [(s["step"], s["index"], s["prompt"]) for s in run.samples] == [(2, 0, caption), (3, 0, caption)]
    page = staff.get(f"/training/runs/{run.pk}/").content.decode()
    assert page.index(f'src="/training/runs/{run.pk}/samples/1.png"') < page.index(
        f'src="/training/runs/{run.pk}/samples/0.png"')  # newest first
    assert "step 3 ·" in page and "step 2 ·" in page
    served = staff.get(f"/training/runs/{run.pk}/samples/1.png")
    assert served.status_code == 200 and served["Content-Type"] == "image/png"
    assert b"".join(served.streaming_content).startswith(b"\x89PNG")
    assert staff.get(f"/training/runs/{run.pk}/samples/9.png").status_code == 404
    # a recorded path outside the run's folder is never served
    TrainingRun.objects.filter(pk=run.pk).update(samples=[{"step": 1, "index": 0, "path": "/etc/hostname"}])
    assert staff.get(f"/training/runs/{run.pk}/samples/0.png").status_code == 404
    staff.logout()
    assert staff.get(f"/training/runs/{run.pk}/samples/1.png").status_code == 302  # to the login page


def test_a_sample_event_seen_again_after_a_resume_is_kept_once(tiny_models):
    from training import services

    parent = register_parent(tiny_models)
    run = TrainingRun.objects.create(method="dpo", parent=parent, dataset=voted_dataset(), status="running",
                                     claim_token="t", max_steps=4)
    event = {"event": "sample", "step": 2, "index": 0, "path": "/r/samples/step-00000002-0.png", "prompt": "a"}
    assert services.run_progress(run_id=run.pk, token="t", event=event)
    assert services.run_progress(run_id=run.pk, token="t", event=dict(event))
    assert services.run_progress(run_id=run.pk, token="t", event={**event, "step": 4,
                                                                  "path": "/r/samples/step-00000004-0.png"})
    run.refresh_from_db()
    assert [s["step"] for s in run.samples] == [2, 4]
