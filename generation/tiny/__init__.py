"""Tiny SDXL-shaped models for the demo and the tests, pre-trained on procedural captioned pictures.

``make_tiny_models(root)`` builds (once; cached, content-keyed) and returns a ``TinyModels`` of paths; see
``build`` for the files, ``shapes`` for the pictures and captions, ``pretrain`` for the training.
"""

from .build import (
    BUILD_VERSION,
    LORA_ALPHA,
    LORA_RANK,
    TinyModels,
    build_key,
    build_tiny_pipeline,
    lora_target_modules,
    make_tiny_models,
    write_diffusers_lora,
    write_kohya_lora,
    write_single_file,
)

__all__ = ["BUILD_VERSION", "LORA_ALPHA", "LORA_RANK", "TinyModels", "build_key", "build_tiny_pipeline",
           "lora_target_modules", "make_tiny_models", "write_diffusers_lora", "write_kohya_lora", "write_single_file"]
