"""Worker-side SDXL generation: what GPU workers run.

Importing this package is cheap (no torch, diffusers or transformers): the data types, ``SAMPLERS``,
``validate_request`` and ``inspect_checkpoint`` work in the web tier; ``generate`` and the pipeline cache
import the heavy libraries when first called.
"""

from .cache import PipelineCache, pipeline_cache, set_pipeline_cache
from .checkpoints import inspect_checkpoint
from .generate import bare_generate, generate
from .prompts import parse_prompt_attention
from .samplers import SAMPLERS, SamplerSpec, build_scheduler, validate_request, validate_size
from .types import (
    CheckpointError,
    CheckpointInfo,
    GenerationError,
    GenerationRequest,
    LoraSpec,
    OutOfMemory,
    VariantSpec,
)

__all__ = [
    "SAMPLERS",
    "PipelineCache",
    "bare_generate",
    "generate",
    "inspect_checkpoint",
    "parse_prompt_attention",
    "pipeline_cache",
    "set_pipeline_cache",
    "CheckpointError",
    "CheckpointInfo",
    "GenerationError",
    "GenerationRequest",
    "LoraSpec",
    "OutOfMemory",
    "SamplerSpec",
    "VariantSpec",
    "build_scheduler",
    "validate_request",
    "validate_size",
]
