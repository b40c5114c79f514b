"""Fixtures shared by the generation tests.

``tiny_models``: tiny SDXL-shaped models (real diffusers/transformers classes, pre-trained on procedural
captioned pictures) from ``generation.tiny.make_tiny_models``, cached across sessions. It returns a ``generation.tiny.TinyModels`` whose fields
(also readable as ``tiny_models["eps_dir"]``) are paths as str:

    eps_dir, eps_file        epsilon model: diffusers folder / single .safetensors (SGM/A1111 layout)
    v_dir, v_file            v-prediction (zero terminal SNR) model; the file carries v_pred / ztsnr keys
    lora_kohya               kohya-format LoRA (.safetensors) for the tiny models
    lora_diffusers           the same LoRA in diffusers format (a folder)
    config_dir               local diffusers config folder for the single files
    root                     the folder holding all of the above

The build (minutes, once) is cached in ARENA_TINY_MODELS_DIR, default VAR_DIR/cache/tiny-models; it is
content-keyed, so a change of generation/tiny or the tiny configs rebuilds it.
Nothing reaches a model hub: HF_HUB_OFFLINE is set for the session.

Torch runs single-threaded here unless OMP_NUM_THREADS says otherwise: tiny models gain nothing from threads,
and on shared CPUs OpenMP's spin-waiting threads made the generation tests 2-3x slower.
"""

# The offline environment and the fixture itself lives in tests/conftest.py, so the arena's browser test shares the one build.
