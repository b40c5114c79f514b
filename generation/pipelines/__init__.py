"""Worker-side SDXL generation: what GPU workers run.

Importing this package is cheap (no torch, diffusers or transformers): the data types, ``SAMPLERS``,
``validate_request`` and ``inspect_checkpoint`` work in the web tier; ``generate`` and the pipeline cache
import the heavy libraries when first called.
"""

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
