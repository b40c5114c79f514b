"""Writes of the generation app: keyword-only, typed ``<entity>_<action>`` functions that validate before they
write. Other apps, the commands and the tests call them through this facade
(``from generation import services; services.job_create(...)``); each lives in the module of its concern:

- ``registry``: checkpoint and LoRA checks, variant registration and edits (the command's and the admin's
  one write path), model hashes, model health;
- ``loras``: LoRAs registered by name (``register_lora`` and admin) and the ``<lora:NAME:WEIGHT>`` tags of
  prompts resolved against them;
- ``prompts``: prompt sets, pasted prompts, characters and their reference images;
- ``images``: encoding and storing images, importing PNGs made elsewhere;
- ``jobs``: generation jobs, live tasks for free-prompt duels (and their cancelling), the ``gpu`` queue;
- ``demo``: the demo's models, prompts and job (``seed_generation_demo``), and its upgrade from random-weight to
  pre-trained tiny models (the ``generation.demo_upgrade`` task);
- ``worker``: claiming, running, storing, releasing and failing tasks on a GPU worker.

The sampler settings they pass (``SamplerSettings``, its key and checks) are in ``generation.sampling``.
"""

from generation.sampling import (
    MAX_SEED,
    MAX_SIDE,
    MAX_STEPS,
    MIN_SIDE,
    SamplerSettings,
    sampler_names,
    settings_key_for,
    size_errors,
)
from generation.services.demo import (
    demo_seed,
    demo_upgrade,
    demo_upgrade_enqueue,
    demo_upgrade_needed,
    tiny_models_ready,
)
from generation.services.images import image_encode, image_import, image_parameters, image_store
from generation.services.jobs import (
    job_cancel,
    job_create,
    job_create_matching,
    job_refresh_status,
    job_retry_failed,
    tasks_cancel,
    tasks_create_live,
    tasks_enqueue,
    tasks_requeue_unsent,
)
from generation.services.loras import (
    PromptLoras,
    lora_check_row,
    lora_register,
    lora_save,
    prompt_loras_resolve,
    prompts_check,
)
from generation.services.prompts import (
    character_reference_add,
    character_save,
    prompt_rows_parse,
    prompt_set_import,
    prompts_from_text,
)
from generation.services.registry import (
    CheckpointCheck,
    checkpoint_check,
    lora_check,
    parse_lora_argument,
    variant_check,
    variant_hash_refresh,
    variant_lora_save,
    variant_loras_set,
    variant_mark_failing,
    variant_mark_healthy,
    variant_register,
    variant_register_lora,
    variant_save,
)
from generation.services.worker import (
    MAX_TASK_ATTEMPTS,
    RunResult,
    TaskPlan,
    TransientGenerationFault,
    generation_device,
    generation_request,
    task_complete,
    task_plan,
    tasks_claim,
    tasks_fail,
    tasks_fail_claimed,
    tasks_release,
    tasks_run,
    variant_spec,
    worker_name,
)

__all__ = [
    "MAX_SEED", "MAX_SIDE", "MAX_STEPS", "MAX_TASK_ATTEMPTS", "MIN_SIDE",
    "CheckpointCheck", "PromptLoras", "RunResult", "SamplerSettings", "TaskPlan", "TransientGenerationFault",
    "character_reference_add", "demo_seed", "demo_upgrade", "demo_upgrade_enqueue", "demo_upgrade_needed", "character_save", "checkpoint_check", "generation_device", "generation_request",
    "image_encode", "image_import", "image_parameters", "image_store", "job_cancel", "job_create", "job_create_matching",
    "job_refresh_status", "job_retry_failed", "lora_check", "lora_check_row", "lora_register", "lora_save",
    "parse_lora_argument", "prompt_loras_resolve", "prompt_rows_parse", "prompt_set_import", "prompts_check",
    "prompts_from_text", "sampler_names", "settings_key_for", "size_errors", "task_complete", "task_plan",
    "tasks_cancel", "tasks_claim", "tasks_create_live", "tasks_enqueue", "tasks_fail", "tasks_fail_claimed",
    "tasks_release", "tasks_requeue_unsent", "tasks_run", "tiny_models_ready", "variant_check", "variant_hash_refresh",
    "variant_lora_save", "variant_loras_set", "variant_mark_failing", "variant_mark_healthy", "variant_register",
    "variant_register_lora", "variant_save",
    "variant_spec", "worker_name",
]
