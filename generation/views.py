"""Staff pages of the generation app: schedule jobs, watch progress (htmx polling), cancel, retry, prompt
sets, characters, images. Thin: parse, fetch with an access check, call one service, render. One URL serves
the full page and, for htmx requests, its partial."""

from __future__ import annotations

import re

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from generation import selectors, services
from generation.forms import CharacterReferenceForm, JobForm, PromptSetImportForm, add_service_errors
from generation.models import Character, GenerationJob, Image, ModelVariant
from generation.permissions import staff_required

POLL_SECONDS = 2


def _jobs_context() -> dict:
    jobs = selectors.jobs_with_progress(limit=30)
    return {"jobs": jobs, "polling": any(p.active for p in jobs), "poll_seconds": POLL_SECONDS}


@staff_required
@require_http_methods(["GET", "POST"])
def jobs(request: HttpRequest) -> HttpResponse:
    """Schedule a job (models × prompts × seeds × settings) and see the history with live progress."""
    if request.method == "GET" and request.htmx:
        return render(request, "generation/_jobs.html", _jobs_context())
    form = JobForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            job = services.job_create(created_by=request.user, **form.service_kwargs())
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"Scheduled {job} with {job.tasks.count()} images.")
            return redirect("generation:job", job_id=job.pk)
    status = 400 if request.method == "POST" else 200
    template = "generation/_job_form.html" if request.htmx else "generation/jobs.html"
    context = {"form": form, "variants": selectors.variants_schedulable(), **_jobs_context()}
    return render(request, template, context, status=status)


def _eta_left(job: GenerationJob, progress) -> float | None:
    """The ETA less the time since the job last moved, so it counts down between images."""
    if progress.eta_seconds is None or not progress.active:
        return progress.eta_seconds
    moved = selectors.job_last_progress_at(job=job)
    since = (timezone.now() - moved).total_seconds() if moved else 0.0
    return max(0.0, progress.eta_seconds - max(0.0, since))


def _job_context(job: GenerationJob) -> dict:
    progress = selectors.job_progress(job=job)
    eta = _eta_left(job, progress)
    return {"job": job, "progress": progress, "polling": progress.active, "poll_seconds": POLL_SECONDS,
            "eta_left": None if eta is None else int(round(eta)),
            "failures": selectors.job_failures(job=job), "images": selectors.job_images(job=job, limit=24),
            "settings_words": selectors.job_settings_words(job=job)}


@staff_required
@require_GET
def job_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    job = get_object_or_404(GenerationJob, pk=job_id)
    template = "generation/_job.html" if request.htmx else "generation/job.html"
    return render(request, template, _job_context(job))


def _job_action(request: HttpRequest, job_id: int, action, done: str) -> HttpResponse:
    job = get_object_or_404(GenerationJob, pk=job_id)
    try:
        count = action(job=job)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, done.format(count=count))
    if request.htmx:
        job.refresh_from_db()
        return render(request, "generation/_job.html", _job_context(job))
    return redirect("generation:job", job_id=job.pk)


@staff_required
@require_POST
def job_cancel(request: HttpRequest, job_id: int) -> HttpResponse:
    return _job_action(request, job_id, services.job_cancel, "Cancelled {count} images not started yet.")


@staff_required
@require_POST
def job_retry(request: HttpRequest, job_id: int) -> HttpResponse:
    return _job_action(request, job_id, services.job_retry_failed, "Queued {count} failed images again.")


@staff_required
@require_http_methods(["GET", "POST"])
def prompt_sets(request: HttpRequest) -> HttpResponse:
    form = PromptSetImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            prompt_set = services.prompt_set_import(
                name=form.cleaned_data["name"], data=upload.read(), filename=upload.name,
                description=form.cleaned_data["description"], negative_prompt=form.cleaned_data["negative_prompt"],
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"{prompt_set.name}: {prompt_set.prompts.count()} prompts.")
            return redirect("generation:prompt_sets")
    status = 400 if request.method == "POST" else 200
    return render(request, "generation/prompt_sets.html",
                  {"form": form, "prompt_sets": selectors.prompt_sets_with_counts()}, status=status)


@staff_required
@require_http_methods(["GET", "POST"])
def characters(request: HttpRequest) -> HttpResponse:
    form = CharacterReferenceForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data.get("image")
        try:
            character = services.character_save(name=form.cleaned_data["name"], tags=form.cleaned_data["tags"],
                                                reference=upload.read() if upload else None)
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"Saved {character.name}.")
            return redirect("generation:characters")
    status = 400 if request.method == "POST" else 200
    return render(request, "generation/characters.html",
                  {"form": form, "characters": Character.objects.prefetch_related("references").order_by("name")},
                  status=status)


@staff_required
@require_GET
def images(request: HttpRequest) -> HttpResponse:
    variant = None
    model = request.GET.get("model") or ""
    if re.fullmatch(r"[0-9]{1,18}", model):  # ASCII digits only: isdigit() is true for "²", which no query takes
        variant = ModelVariant.objects.filter(pk=model).first()
    context = {"images": selectors.images_recent(limit=120, variant=variant), "variant": variant,
               "variants": ModelVariant.objects.order_by("name")}
    return render(request, "generation/images.html", context)


def _file_response(field_file, *, download_name: str, attachment: bool) -> FileResponse:
    if not field_file:
        raise Http404("no such file")
    try:
        handle = field_file.open("rb")
    except (FileNotFoundError, OSError):
        raise Http404("the file is missing from storage") from None
    response = FileResponse(handle, as_attachment=attachment, filename=download_name)
    response["Cache-Control"] = "private, max-age=3600"
    return response


@staff_required
@require_GET
def image_download(request: HttpRequest, image_id: int) -> FileResponse:
    """The original PNG, with A1111's ``parameters`` chunk (staff only)."""
    image = get_object_or_404(Image, pk=image_id)
    return _file_response(image.file, download_name=f"arena-{image.pk}-{image.seed}.png", attachment=True)


@staff_required
@require_GET
def image_thumb(request: HttpRequest, image_id: int) -> FileResponse:
    image = get_object_or_404(Image, pk=image_id)
    if image.thumb:
        return _file_response(image.thumb, download_name=f"{image.pk}.webp", attachment=False)
    return _file_response(image.voter_file, download_name=f"{image.pk}.png", attachment=False)
