"""Staff pages: access, full page and htmx partial from one URL, scheduling, cancel/retry, uploads, downloads."""

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image as PILImage

from generation import images as png
from generation import services
from generation.models import Character, GenerationJob, GenerationTask, Prompt, PromptSet
from tests.generation.helpers import make_prompt_set, make_variant, sampler_settings

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def staff(client):
    user = get_user_model().objects.create_user("admin", is_staff=True)  # no password: no slow hashing
    client.force_login(user)
    return user


@pytest.fixture
def voter(client):
    user = get_user_model().objects.create_user("voter")
    client.force_login(user)
    return user


PAGES = ["generation:jobs", "generation:prompt_sets", "generation:characters", "generation:images"]


@pytest.mark.parametrize("name", PAGES)
def test_anonymous_visitors_are_sent_to_login(client, name):
    response = client.get(reverse(name))
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert client.get(reverse(name), **HX).status_code == 403


@pytest.mark.parametrize("name", PAGES)
def test_non_staff_users_get_403(client, voter, name):
    assert client.get(reverse(name)).status_code == 403
    assert client.get(reverse(name), **HX).status_code == 403


def test_non_staff_cannot_schedule(client, voter):
    variant = make_variant("A")
    response = client.post(reverse("generation:jobs"), {"variants": [variant.pk], "prompt_text": "1girl", "seeds": "1"})
    assert response.status_code == 403 and not GenerationJob.objects.exists()


def test_jobs_page_full_and_htmx_partial(client, staff):
    make_variant("Tiny A")
    page = client.get(reverse("generation:jobs"))
    assert page.status_code == 200
    html = page.content.decode()
    assert "<html" in html and "Tiny A" in html and 'name="seeds"' in html
    partial = client.get(reverse("generation:jobs"), **HX)
    assert partial.status_code == 200 and "<html" not in partial.content.decode() and 'id="jobs"' in partial.content.decode()


def test_staff_schedules_a_job(client, staff, django_capture_on_commit_callbacks):
    a, b = make_variant("A"), make_variant("B")
    prompt_set = make_prompt_set(n=3)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(reverse("generation:jobs"), {
            "name": "nightly", "variants": [a.pk, b.pk], "prompt_set": prompt_set.pk, "seeds": "1-2",
            "steps": "4", "sampler": "", "width": "", "height": "", "cfg_scale": "", "clip_skip": "", "negative_prompt": "",
        })
    job = GenerationJob.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("generation:job", args=[job.pk])
    assert len(callbacks) == 1
    assert (job.name, job.created_by, job.tasks.count()) == ("nightly", staff, 2 * 3 * 2)
    assert set(job.tasks.values_list("steps", flat=True)) == {4}


@pytest.mark.parametrize("data, message", [
    ({"seeds": "1"}, "This field is required"),  # no models
    ({"variants": "MODEL", "seeds": "one, two", "prompt_text": "1girl"}, "is not a seed"),
    ({"variants": "MODEL", "seeds": "1"}, "Pick a prompt set or paste prompts"),
    ({"variants": "MODEL", "seeds": "1", "prompt_text": "1girl", "width": "1004", "height": "1024"}, "not a multiple of 8"),
    ({"variants": "MODEL", "seeds": "1", "prompt_text": "1girl", "width": "2048", "height": "2560"}, "Ensure this value"),
])
def test_bad_schedule_input_shows_errors_and_saves_nothing(client, staff, data, message):
    variant = make_variant("A")
    data = {k: (variant.pk if v == "MODEL" else v) for k, v in data.items()}
    response = client.post(reverse("generation:jobs"), data)
    assert response.status_code == 400 and message in response.content.decode()
    assert not GenerationJob.objects.exists() and not GenerationTask.objects.exists() and not Prompt.objects.exists()
    partial = client.post(reverse("generation:jobs"), data, **HX)
    assert partial.status_code == 400 and "<html" not in partial.content.decode()


def test_job_page_shows_progress_per_model_and_polls_while_running(client, staff, django_capture_on_commit_callbacks):
    a, b = make_variant("Alpha"), make_variant("Beta")
    with django_capture_on_commit_callbacks(execute=False):
        job = services.job_create(variants=[a, b], prompt_set=make_prompt_set(n=1), seeds=[1, 2])
    GenerationTask.objects.filter(job=job, variant=a).update(status="done")
    page = client.get(reverse("generation:job", args=[job.pk])).content.decode()
    assert "<html" in page and "Alpha" in page and "Beta" in page and "2/2" in page and "0/2" in page
    partial = client.get(reverse("generation:job", args=[job.pk]), **HX).content.decode()
    assert "<html" not in partial and 'hx-trigger="every 2s"' in partial and "2/4 images done" in partial


def test_cancel_and_retry_from_the_job_page(client, staff, django_capture_on_commit_callbacks):
    a = make_variant("A")
    with django_capture_on_commit_callbacks(execute=False):
        job = services.job_create(variants=[a], prompt_set=make_prompt_set(n=1), seeds=[1, 2])
    first = job.tasks.order_by("id").first()
    GenerationTask.objects.filter(pk=first.pk).update(status="failed", error="NaN latents")
    response = client.post(reverse("generation:job_cancel", args=[job.pk]), **HX)
    assert response.status_code == 200 and "<html" not in response.content.decode()
    job.refresh_from_db()
    assert job.status == "cancelled" and job.tasks.filter(status="cancelled").count() == 1
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(reverse("generation:job_retry", args=[job.pk]))
    assert response.status_code == 302 and len(callbacks) == 1
    first.refresh_from_db()
    assert first.status == "pending"
    assert client.get(reverse("generation:job_cancel", args=[job.pk])).status_code == 405


def test_prompt_set_upload(client, staff):
    upload = SimpleUploadedFile("chars.csv", b"prompt,character\n\"1girl, hatsune miku\",Hatsune Miku\n1boy\n", "text/csv")
    response = client.post(reverse("generation:prompt_sets"), {"name": "Chars", "file": upload})
    assert response.status_code == 302
    assert list(PromptSet.objects.get(name="Chars").prompts.values_list("text", "character__name")) == [
        ("1girl, hatsune miku", "Hatsune Miku"), ("1boy", None)]
    bad = SimpleUploadedFile("bad.csv", b"caption\nx\n", "text/csv")
    response = client.post(reverse("generation:prompt_sets"), {"name": "Bad", "file": bad})
    assert response.status_code == 400 and "prompt" in response.content.decode()
    assert not PromptSet.objects.filter(name="Bad").exists()


def test_character_with_reference_image(client, staff):
    buffer = io.BytesIO()
    PILImage.new("RGB", (32, 32), (200, 10, 10)).save(buffer, format="JPEG")
    response = client.post(reverse("generation:characters"), {
        "name": "Hatsune Miku", "tags": "hatsune_miku", "image": SimpleUploadedFile("miku.jpg", buffer.getvalue(), "image/jpeg")})
    assert response.status_code == 302
    character = Character.objects.get(name="Hatsune Miku")
    assert character.tags == "hatsune_miku" and character.references.count() == 1
    response = client.post(reverse("generation:characters"), {
        "name": "Hatsune Miku", "image": SimpleUploadedFile("x.png", b"not an image", "image/png")})
    assert response.status_code == 400 and character.references.count() == 1


def test_staff_download_carries_the_parameters_chunk_and_lists_use_thumbnails(client, staff):
    variant = make_variant("A")
    prompt = Prompt.objects.create(text="1girl, solo")
    image = services.image_store(variant=variant, prompt=prompt, image=PILImage.new("RGB", (256, 256)),
                                 settings=sampler_settings(seed=9, steps=2, cfg_scale=5.0, width=256, height=256))
    response = client.get(reverse("generation:image_download", args=[image.pk]))
    assert response.status_code == 200 and "attachment" in response["Content-Disposition"]
    data = b"".join(response.streaming_content)
    assert "Seed: 9" in png.png_text_chunks(data)["parameters"]
    listing = client.get(reverse("generation:images")).content.decode()
    assert reverse("generation:image_thumb", args=[image.pk]) in listing
    thumb = client.get(reverse("generation:image_thumb", args=[image.pk]))
    assert thumb.status_code == 200 and PILImage.open(io.BytesIO(b"".join(thumb.streaming_content))).format == "WEBP"


def test_non_staff_cannot_download_originals(client, voter):
    variant = make_variant("A")
    image = services.image_store(variant=variant, prompt=Prompt.objects.create(text="x"), image=PILImage.new("RGB", (256, 256)),
                                 settings=sampler_settings(seed=1, steps=2, cfg_scale=5.0, width=256, height=256))
    assert client.get(reverse("generation:image_download", args=[image.pk])).status_code == 403


@pytest.mark.parametrize("model", ["modelvariant", "variantlora", "character", "characterreference", "promptset",
                                   "prompt", "generationjob", "generationtask", "image"])
def test_django_admin_pages_of_every_generation_model(client, model, django_capture_on_commit_callbacks):
    from django.contrib import admin

    from generation import models

    client.force_login(get_user_model().objects.create_user("root", is_staff=True, is_superuser=True))
    variant = make_variant("A")
    models.VariantLora.objects.create(variant=variant, path="/models/style.safetensors", weight=0.5)
    prompt = Prompt.objects.create(text="1girl")
    image = services.image_store(variant=variant, prompt=prompt, image=PILImage.new("RGB", (256, 256)),
                                 settings=sampler_settings(seed=1, steps=2, cfg_scale=5.0, width=256, height=256))
    with django_capture_on_commit_callbacks(execute=False):
        services.job_create(variants=[variant], prompt_set=make_prompt_set(n=1), seeds=[1])
    character = Character.objects.create(name="Miku")
    models.CharacterReference.objects.create(character=character, image=image.voter_file.name)
    changelist = client.get(reverse(f"admin:generation_{model}_changelist"))
    assert changelist.status_code == 200
    obj = getattr(models, {m._meta.model_name: m.__name__ for m in admin.site._registry}[model]).objects.first()
    assert client.get(reverse(f"admin:generation_{model}_change", args=[obj.pk])).status_code == 200
