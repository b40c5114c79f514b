"""``manage.py bench_generation --models 2 --prompts 8 --seeds 2``: the cost of the job machinery.

Runs a job of models × prompts × seeds through the real task path (job_create → the tasks' enqueue →
``generation.run_tasks`` in process → claim, batch, generate, store three files per image) on the tiny
models, then makes the same images in the same process through bare diffusers calls (``bare_generate``: its
own pipeline load per model, one image per call, nothing stored). Prints one JSON line:
``{"images", "job_s", "bare_s", "overhead_ratio", "pipeline_loads", "peak_rss_mb"}``. The database rows are
rolled back and the files are written to a temporary folder, so the benchmark leaves nothing behind."""

from __future__ import annotations

import json
import resource
import shutil
import tempfile
import time
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.test.utils import override_settings

from generation import sampling, services
from generation.fields import cli_int
from generation.models import GenerationJob, GenerationTask, Image, PromptSet

TAGS = ["smile", "twintails", "school uniform", "night sky", "cherry blossoms", "cat ears", "rain", "from above",
        "sitting", "sunset", "library", "armor"]


class _Rollback(Exception):
    pass


class Command(BaseCommand):
    help = "Benchmark a generation job through the task path against bare diffusers calls (tiny models)."

    def add_arguments(self, parser):
        parser.add_argument("--models", type=cli_int(minimum=1, maximum=4), default=2)
        parser.add_argument("--prompts", type=cli_int(minimum=1, maximum=1000), default=8)
        parser.add_argument("--seeds", type=cli_int(minimum=1, maximum=1000), default=2)
        parser.add_argument("--steps", type=cli_int(minimum=1, maximum=sampling.MAX_STEPS), default=4)
        parser.add_argument("--size", type=cli_int(minimum=sampling.MIN_SIDE, maximum=sampling.MAX_SIDE), default=256)
        parser.add_argument("--batch-size", type=cli_int(minimum=1, maximum=1000), default=None,
                            help="default: GENERATION_BATCH_SIZE")
        parser.add_argument("--device", default=None, help="default: GENERATION_DEVICE")
        parser.add_argument("--tiny-dir", default=None, help="default: TINY_MODELS_DIR (built if missing)")

    def handle(self, *args, **options):
        if options["prompts"] < 1 or options["seeds"] < 1:
            raise CommandError("--prompts and --seeds must be at least 1")
        errors = services.size_errors(width=options["size"], height=options["size"])
        if errors:
            raise CommandError("; ".join(errors))
        tiny_dir = Path(options["tiny_dir"] or Path(settings.TINY_MODELS_DIR))
        call_command("make_tiny_models", str(tiny_dir), stdout=open("/dev/null", "w"))
        from generation.tiny import make_tiny_models

        tiny = make_tiny_models(tiny_dir)
        from celery import current_app as celery_app
        from generation import pipelines

        media = tempfile.mkdtemp(prefix="bench-media-")
        eager = celery_app.conf.task_always_eager
        celery_app.conf.task_always_eager = True  # in this process, as the benchmark asks
        batch_size = options["batch_size"] or settings.GENERATION_BATCH_SIZE
        overrides = {"MEDIA_ROOT": media, "GENERATION_BATCH_SIZE": batch_size}
        if options["device"]:
            overrides["GENERATION_DEVICE"] = options["device"]
        result: dict = {}
        try:
            with override_settings(**overrides):
                self._warm_up(pipelines, tiny, options)
                try:
                    with transaction.atomic():
                        result = self._bench(pipelines, tiny, options)
                        raise _Rollback
                except _Rollback:
                    pass
        finally:
            celery_app.conf.task_always_eager = eager
            shutil.rmtree(media, ignore_errors=True)
        self.stdout.write(json.dumps(result))

    # --- parts -----------------------------------------------------------------------------------------------

    def _variant_sources(self, tiny) -> list[dict]:
        return [
            {"name": "bench eps (single file)", "path": tiny.eps_file},
            {"name": "bench v-pred (single file)", "path": tiny.v_file, "prediction": "v"},
            {"name": "bench eps + kohya LoRA", "path": tiny.eps_file, "loras": [(tiny.lora_kohya, 0.8)]},
            {"name": "bench eps folder + diffusers LoRA", "path": tiny.eps_dir, "loras": [(tiny.lora_diffusers, 0.5)]},
        ]

    def _warm_up(self, pipelines, tiny, options) -> None:
        """Import torch and diffusers and run one image, so neither side pays the process's first-use costs."""
        spec = pipelines.VariantSpec(key="bench-warm-up", source_type="single_file", source_path=tiny.eps_file)
        request = pipelines.GenerationRequest(prompt="1girl", seed=0, steps=1, width=options["size"], height=options["size"])
        pipelines.bare_generate(spec, [request], device=options["device"] or services.generation_device())

    def _bench(self, pipelines, tiny, options) -> dict:
        size, steps = options["size"], options["steps"]
        defaults = {"width": size, "height": size, "steps": steps, "sampler": "Euler a"}
        variants = [
            services.variant_register(path=s["path"], name=s["name"], prediction=s.get("prediction"),
                                      loras=s.get("loras", ()), defaults=defaults, family="bench")
            for s in self._variant_sources(tiny)[: options["models"]]
        ]
        prompt_set = PromptSet.objects.create(name="bench prompts")
        text = "\n".join(
            f"masterpiece, best quality, 1girl, {TAGS[i % len(TAGS)]}, {TAGS[(i * 5 + 3) % len(TAGS)]}, bench {i}"
            for i in range(options["prompts"])
        )
        services.prompt_set_import(name=prompt_set.name, data=text)
        seeds = list(range(1, options["seeds"] + 1))

        previous_cache = pipelines.set_pipeline_cache(pipelines.PipelineCache(max_entries=settings.PIPELINE_CACHE_SIZE))
        try:
            started = time.perf_counter()
            job = services.job_create(variants=variants, prompt_set=prompt_set, seeds=seeds, name="bench")
            # In the benchmark's rolled-back transaction on_commit never fires: run what it would run.
            services.tasks_enqueue(task_ids=list(job.tasks.values_list("id", flat=True)))
            job_s = time.perf_counter() - started
            loads = pipelines.pipeline_cache().loads
        finally:
            pipelines.set_pipeline_cache(previous_cache)
        job.refresh_from_db()
        images = Image.objects.filter(job=job).count()
        expected = len(variants) * options["prompts"] * len(seeds)
        if job.status != GenerationJob.Status.DONE or images != expected:
            failed = job.tasks.filter(status=GenerationTask.Status.FAILED).first()
            raise CommandError(f"the job ended {job.status} with {images}/{expected} images"
                               + (f": {failed.error}" if failed else ""))

        tasks = list(job.tasks.select_related("prompt", "variant").order_by("variant_id", "id"))
        started = time.perf_counter()
        for variant in variants:
            spec = services.variant_spec(variant)
            requests = [services.generation_request(t) for t in tasks if t.variant_id == variant.pk]
            pictures = pipelines.bare_generate(spec, requests, device=services.generation_device())
            assert len(pictures) == len(requests)
        bare_s = time.perf_counter() - started
        return {
            "images": images,
            "job_s": round(job_s, 3),
            "bare_s": round(bare_s, 3),
            "overhead_ratio": round(job_s / bare_s, 3) if bare_s else None,
            "pipeline_loads": loads,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }
