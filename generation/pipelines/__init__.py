"""Worker-side SDXL generation: what GPU workers run.

Importing this package is cheap (no torch, diffusers or transformers): the data types, the sampler and schedule
type table (``SAMPLERS``, ``SCHEDULE_TYPES``, ``resolve_sampler``), ``validate_request``, the prompt-syntax
helpers (``parse_lora_tags``), the hires arithmetic, the A1111 hashes and ``inspect_checkpoint`` work in the
web tier; ``generate`` and the pipeline cache import the heavy libraries when first called. Importing it also
switches the model hubs off for good (offline.py).
"""

from .offline import force_offline

force_offline()  # before anything below can import huggingface_hub

from .cache import PipelineCache, pipeline_cache, set_pipeline_cache  # noqa: E402
from .checkpoints import inspect_checkpoint  # noqa: E402
from .generate import bare_generate, generate  # noqa: E402
from .hashes import lora_short_hash, model_short_hash, with_prompt_loras  # noqa: E402
from .hires import HR_UPSCALERS, hires_size, hires_steps  # noqa: E402
from .loading import resolve_device  # noqa: E402
from .prompt_syntax import LoraTags, PromptLora, check_prompt_syntax, parse_lora_tags  # noqa: E402
from .prompts import parse_prompt_attention  # noqa: E402
from .samplers import (  # noqa: E402
    AUTOMATIC,
    LEGACY_SAMPLER_NAMES,
    SAMPLERS,
    SCHEDULE_TYPES,
    SamplerSpec,
    build_scheduler,
    effective_schedule,
    resolve_sampler,
    sampler_names,
    schedule_type_names,
    validate_request,
    validate_size,
)
from .types import (  # noqa: E402
    CheckpointError,
    CheckpointInfo,
    GenerationError,
    GenerationRequest,
    LoraSpec,
    OutOfMemory,
    VariantSpec,
)

__all__ = [
    "AUTOMATIC",
    "HR_UPSCALERS",
    "LEGACY_SAMPLER_NAMES",
    "SAMPLERS",
    "SCHEDULE_TYPES",
    "CheckpointError",
    "CheckpointInfo",
    "GenerationError",
    "GenerationRequest",
    "LoraSpec",
    "LoraTags",
    "OutOfMemory",
    "PipelineCache",
    "PromptLora",
    "SamplerSpec",
    "VariantSpec",
    "bare_generate",
    "build_scheduler",
    "check_prompt_syntax",
    "effective_schedule",
    "force_offline",
    "generate",
    "hires_size",
    "hires_steps",
    "inspect_checkpoint",
    "lora_short_hash",
    "model_short_hash",
    "parse_lora_tags",
    "parse_prompt_attention",
    "pipeline_cache",
    "resolve_device",
    "resolve_sampler",
    "sampler_names",
    "schedule_type_names",
    "set_pipeline_cache",
    "validate_request",
    "validate_size",
    "with_prompt_loras",
]
