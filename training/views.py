"""Staff pages of the training app: datasets from votes, scheduling a run, watching it (htmx polling), cancel,
resume, history, and enrolling a LoRA file. Thin: parse, fetch with an access check, call one service, render.
One URL serves the full page and, for htmx requests, its partial."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from training import selectors, services
from training.forms import DatasetForm, LoraEnrollForm, RunForm, add_service_errors
from training.models import TrainingRun
from generation.permissions import staff_required
from training.plots import loss_png

POLL_SECONDS = 2


@staff_required
@require_GET
def index(request: HttpRequest) -> HttpResponse:
    """The history: every run (live progress while any is active) and the datasets."""
    runs = selectors.runs_recent()
    context = {"runs": runs, "datasets": selectors.datasets_recent(limit=10),
               "polling": any(r.active for r in runs), "poll_seconds": POLL_SECONDS}
    return render(request, "training/_runs.html" if request.htmx else "training/index.html", context)


@staff_required
@require_http_methods(["GET", "POST"])
def datasets(request: HttpRequest) -> HttpResponse:
    form = DatasetForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            filters = services.filters_clean(**form.service_kwargs())
            dataset = services.dataset_build(filters=filters, name=form.cleaned_data["name"], created_by=request.user)
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"Built {dataset} with {dataset.rows} rows.")
            return redirect("training:datasets")
    status = 400 if request.method == "POST" else 200
    return render(request, "training/datasets.html", {"form": form, "datasets": selectors.datasets_recent()},
                  status=status)


@staff_required
@require_http_methods(["GET", "POST"])
def run_new(request: HttpRequest) -> HttpResponse:
    """Schedule a run: the form starts from the chosen method's defaults (``?method=``)."""
    method = (request.POST.get("method") or request.GET.get("method") or "dpo")
    initial = {k: request.GET[k] for k in ("parent", "dataset") if request.GET.get(k, "").isdigit()}
    form = RunForm(request.POST or None, method=method, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            run = services.run_create(started_by=request.user, **form.service_kwargs())
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"Queued {run}.")
            return redirect("training:run", run_id=run.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "training/run_new.html", {"form": form, "methods": TrainingRun.Method.choices},
                  status=status)


def _run_context(run: TrainingRun) -> dict:
    return {"run": run, "polling": run.active, "poll_seconds": POLL_SECONDS, "points": len(run.metrics),
            "last": run.metrics[-1] if run.metrics else {}, "samples": selectors.run_samples(run)}


@staff_required
@require_GET
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(TrainingRun.objects.select_related("parent", "dataset", "result_variant"), pk=run_id)
    template = "training/_run.html" if request.htmx else "training/run.html"
    return render(request, template, _run_context(run))


@staff_required
@require_GET
def run_loss_plot(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(TrainingRun, pk=run_id)
    steps, losses = selectors.loss_curve(run)
    response = HttpResponse(loss_png(steps, losses, title=str(run)), content_type="image/png")
    response["Cache-Control"] = "no-store"
    return response


@staff_required
@require_GET
def run_sample(request: HttpRequest, run_id: int, n: int) -> HttpResponse:
    """One of the run's sample images (a file under the run's own folder; anything else is a 404)."""
    from pathlib import Path

    from django.http import FileResponse, Http404

    run = get_object_or_404(TrainingRun, pk=run_id)
    entry = run.samples[n] if n < len(run.samples) else None
    root = services.run_dir(run).resolve()
    path = Path(entry["path"]).resolve() if isinstance(entry, dict) and entry.get("path") else None
    if path is None or not path.is_relative_to(root) or path.suffix != ".png" or not path.is_file():
        raise Http404("no such sample image")
    response = FileResponse(path.open("rb"), content_type="image/png")
    response["Cache-Control"] = "private, max-age=3600"
    return response


def _action(request: HttpRequest, run_id: int, service) -> HttpResponse:
    run = get_object_or_404(TrainingRun, pk=run_id)
    try:
        run = service(run=run)
    except ValidationError as exc:
        messages.error(request, "; ".join(exc.messages))
        status = 400
    else:
        messages.success(request, f"{run} is {run.get_status_display()}.")
        status = 200
    if request.htmx:
        run.refresh_from_db()
        return render(request, "training/_run.html", {**_run_context(run), "flash": True}, status=status)
    return redirect("training:run", run_id=run.pk)


@staff_required
@require_POST
def run_cancel(request: HttpRequest, run_id: int) -> HttpResponse:
    return _action(request, run_id, services.run_cancel)


@staff_required
@require_POST
def run_resume(request: HttpRequest, run_id: int) -> HttpResponse:
    return _action(request, run_id, services.run_resume)


@staff_required
@require_http_methods(["GET", "POST"])
def lora_enroll(request: HttpRequest) -> HttpResponse:
    """An admin's LoRA file, enrolled as a fine-tune of its parent by the same path as a run's result."""
    form = LoraEnrollForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            child, job = services.lora_enroll(created_by=request.user, **form.service_kwargs())
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            rendering = f" and queued {job.tasks.count()} images on its parent's fixed prompts" if job else \
                " (its parent has no fixed-prompt images to render yet)"
            messages.success(request, f"Registered {child.name}{rendering}.")
            return redirect("arena:model", pk=child.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "training/lora_enroll.html", {"form": form}, status=status)
