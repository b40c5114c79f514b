"""Generation on the tiny SDXL models: loading, samplers, eps / v-prediction, LoRAs, seeds and batching, the cache.

Pipeline-level tests use LoadedPipeline.generate_arrays at 64x64 (it skips only the UI size limits);
tests of the public generate() use the smallest valid size, 256x256.
"""

import socket

import numpy as np
import pytest

# diffusers' schedulers call np.array(tensor, copy=False) under numpy 2; harmless
pytestmark = [pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
              pytest.mark.filterwarnings("ignore:__array_wrap__:DeprecationWarning")]

from generation.pipelines import (
    SAMPLERS,
    GenerationError,
    GenerationRequest,
    LoraSpec,
    OutOfMemory,
    PipelineCache,
    VariantSpec,
    bare_generate,
    build_scheduler,
    generate,
    resolve_sampler,
    pipeline_cache,
    set_pipeline_cache,
    validate_request,
)


def req(**kw):
    base = dict(prompt="masterpiece, 1girl, (smile:1.2)", negative_prompt="worst quality", steps=2, width=64,
                height=64, seed=1, sampler="Euler")
    return GenerationRequest(**{**base, **kw})


@pytest.fixture(scope="module")
def loaded(tiny_models):
    """One loaded pipeline per tiny variant, shared by this module's pipeline-level tests."""
    from generation.pipelines.loading import load_pipeline

    specs = {
        "eps_file": VariantSpec("eps-file", "single_file", tiny_models.eps_file),
        "v_file": VariantSpec("v-file", "single_file", tiny_models.v_file, prediction_type="v"),
        "eps_dir": VariantSpec("eps-dir", "diffusers", tiny_models.eps_dir),
    }
    return {name: load_pipeline(spec, "cpu") for name, spec in specs.items()}


@pytest.fixture
def fresh_cache():
    cache = PipelineCache(max_entries=4)
    previous = set_pipeline_cache(cache)
    yield cache
    set_pipeline_cache(previous)


def assert_image(a):
    assert a.shape == (64, 64, 3)
    assert np.isfinite(a).all()
    assert a.std() > 1e-3  # not a constant (black/NaN) image


# -- loading ---------------------------------------------------------------------------------------------


def test_single_file_loads_the_same_model_as_the_diffusers_folder(loaded):
    import torch

    folder, single = loaded["eps_dir"].pipe, loaded["eps_file"].pipe
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        a, b = getattr(folder, name).state_dict(), getattr(single, name).state_dict()
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    r = req(seed=3)
    np.testing.assert_array_equal(loaded["eps_dir"].generate_arrays([r])[0], loaded["eps_file"].generate_arrays([r])[0])


def test_single_file_with_an_explicit_config_folder_loads(tiny_models):
    from generation.pipelines.loading import load_pipeline

    spec = VariantSpec("cfg", "single_file", tiny_models.eps_file, config_path=tiny_models.config_dir)
    assert load_pipeline(spec, "cpu").pipe.unet.config.cross_attention_dim == 96


def test_missing_checkpoint_is_a_one_line_generation_error(tmp_path, fresh_cache):
    spec = VariantSpec("gone", "single_file", str(tmp_path / "gone.safetensors"))
    with pytest.raises(GenerationError, match="checkpoint not found") as info:
        generate(spec, [req(width=256, height=256)])
    assert "\n" not in str(info.value)
    assert fresh_cache.loads == 0


def test_source_type_must_match_the_checkpoint(tiny_models, fresh_cache):
    spec = VariantSpec("wrong", "diffusers", tiny_models.eps_file)
    with pytest.raises(GenerationError, match="is a single_file checkpoint, registered as diffusers"):
        generate(spec, [req(width=256, height=256)])


def test_missing_lora_is_a_generation_error(tiny_models, fresh_cache):
    spec = VariantSpec("l", "single_file", tiny_models.eps_file, loras=(LoraSpec("/nonexistent/x.safetensors"),))
    with pytest.raises(GenerationError, match="LoRA not found"):
        generate(spec, [req(width=256, height=256)])


# -- samplers, eps and v-prediction ----------------------------------------------------------------------


def test_the_a1111_samplers_of_issue_11_are_there_and_old_combined_names_resolve():
    required = {"Euler a", "Euler", "LMS", "Heun", "DPM2", "DPM2 a", "DPM++ 2M", "DPM++ SDE", "DPM++ 2M SDE",
                "DPM++ 3M SDE", "DDIM", "UniPC", "LCM"}
    assert required <= set(SAMPLERS)
    assert resolve_sampler("DPM++ 2M Karras") == ("DPM++ 2M", "Automatic")
    assert resolve_sampler("DPM++ SDE Karras") == ("DPM++ SDE", "Automatic")
    assert resolve_sampler("DPM++ 2M SDE Karras") == ("DPM++ 2M SDE", "Karras")


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_every_sampler_generates_with_eps_and_v_models(loaded, sampler):
    for name in ("eps_file", "v_file"):
        (image,) = loaded[name].generate_arrays([req(sampler=sampler, seed=11)])
        assert_image(image)


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_v_prediction_samples_with_a1111s_zero_terminal_snr(loaded, sampler):
    base = loaded["v_file"].base_scheduler_config
    sched = build_scheduler(sampler, base, prediction_type="v", seeds=[1])
    assert sched.config.prediction_type == "v_prediction"
    # A1111's rescale_zero_terminal_snr_abar ends at 4.8973451890853435e-08 (float32 cumulative product: 1e-4)
    assert float(sched.alphas_cumprod[-1]) == pytest.approx(4.8973451890853435e-08, rel=1e-4)
    eps = build_scheduler(sampler, loaded["eps_file"].base_scheduler_config, prediction_type="eps", seeds=[1])
    assert eps.config.prediction_type == "epsilon"
    assert float(eps.alphas_cumprod[-1]) > 1e-3
    if SAMPLERS[sampler].family != "lcm":
        assert SAMPLERS[sampler].scheduler in {cls.__name__ for cls in type(sched).__mro__}


def test_samplers_are_built_from_the_pipelines_scheduler_config(loaded):
    sched = build_scheduler("DPM++ 2M Karras", loaded["eps_file"].base_scheduler_config)
    assert sched.config.algorithm_type == "dpmsolver++" and sched.a1111_schedule == "karras"
    assert sched.config.beta_schedule == "scaled_linear" and sched.config.steps_offset == 1


def test_v_prediction_and_eps_use_their_own_settings_when_generating(loaded, monkeypatch):
    seen = []
    pipe = loaded["v_file"].pipe
    original = type(pipe).__call__

    def spy(self, *args, **kwargs):
        seen.append((self.scheduler.config.prediction_type, self.scheduler.config.timestep_spacing, kwargs["guidance_rescale"]))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(pipe), "__call__", spy)
    plain = loaded["v_file"].generate_arrays([req(guidance_rescale=0.0)])[0]
    rescaled = loaded["v_file"].generate_arrays([req(guidance_rescale=0.7)])[0]
    loaded["eps_file"].generate_arrays([req()])
    # A1111's Uniform schedule for Euler on both (diffusers' "linspace" spacing keeps init_noise_sigma = sigma max)
    assert seen == [("v_prediction", "linspace", 0.0), ("v_prediction", "linspace", 0.7), ("epsilon", "linspace", 0.0)]
    assert np.abs(plain - rescaled).max() > 1e-4


def test_settings_change_the_image(loaded):
    lp = loaded["eps_file"]
    base = lp.generate_arrays([req()])[0]
    for change in (dict(seed=2), dict(prompt="landscape"), dict(negative_prompt=""), dict(cfg_scale=3.0), dict(clip_skip=3),
                   dict(steps=3), dict(sampler="Euler a")):
        other = lp.generate_arrays([req(**change)])[0]
        assert np.abs(base - other).max() > 1e-4, change
    # at 2 steps Uniform and Karras are the same two sigmas (sigma max, sigma min); at 3 they differ
    three = lp.generate_arrays([req(steps=3)])[0]
    assert np.abs(three - lp.generate_arrays([req(steps=3, schedule_type="Karras")])[0]).max() > 1e-4
    # on SDXL, clip skip 2 is the penultimate layer that 1 already uses (A1111, Forge, ComfyUI)
    np.testing.assert_array_equal(lp.generate_arrays([req(clip_skip=2)])[0], base)


def test_non_square_sizes_give_images_of_that_size(loaded):
    (image,) = loaded["eps_file"].generate_arrays([req(width=96, height=64)])
    assert image.shape == (64, 96, 3)


def test_hires_pass_upscales_and_refines_with_image_to_image(loaded):
    lp = loaded["v_file"]
    hires = [req(seed=s, enable_hr=True, hr_scale=1.5, hr_second_pass_steps=2, denoising_strength=0.5, sampler="Euler a")
             for s in (1, 2)]
    batched = lp.generate_arrays(hires, batch_size=2)
    assert [im.shape for im in batched] == [(96, 96, 3)] * 2
    assert all(np.isfinite(im).all() and im.std() > 1e-3 for im in batched)
    np.testing.assert_allclose(batched[1], lp.generate_arrays(hires[1:])[0], atol=2e-4)
    assert hires[0].output_size() == (96, 96) and req().output_size() == (64, 64)


def test_hires_settings_are_validated():
    validate_request(GenerationRequest("x", width=832, height=1216, enable_hr=True, hr_scale=1.5, hr_second_pass_steps=10))
    with pytest.raises(GenerationError, match="hires size 2560x2560 is out of range"):
        validate_request(GenerationRequest("x", width=1024, height=1024, enable_hr=True, hr_scale=2.5))
    with pytest.raises(GenerationError, match="hires upscale must be from 1 to 4"):
        validate_request(GenerationRequest("x", enable_hr=True, hr_scale=0.5))
    with pytest.raises(GenerationError, match="hires denoising strength"):
        validate_request(GenerationRequest("x", width=512, height=512, enable_hr=True, hr_scale=2, denoising_strength=0))
    with pytest.raises(GenerationError, match="unknown hires upscaler 'ESRGAN_4x'"):
        validate_request(GenerationRequest("x", width=512, height=512, enable_hr=True, hr_upscaler="ESRGAN_4x"))
    # off: the hires settings are not looked at
    validate_request(GenerationRequest("x", hr_scale=0.5, denoising_strength=0))


# -- seeds and batching ----------------------------------------------------------------------------------


@pytest.mark.parametrize("sampler", ["Euler a", "DPM++ SDE Karras", "DPM++ 2M SDE Karras", "DPM++ 3M SDE", "LCM"])
def test_same_seed_gives_the_same_image_batched_or_alone(loaded, sampler):
    lp = loaded["eps_file"]
    requests = [req(sampler=sampler, seed=s, prompt=p) for s, p in [(5, "1girl"), (6, "cat"), (7, "1girl")]]
    batched = lp.generate_arrays(requests, batch_size=3)
    alone = [lp.generate_arrays([r], batch_size=1)[0] for r in requests]
    for a, b in zip(batched, alone):
        np.testing.assert_allclose(a, b, atol=2e-4)
    assert np.abs(batched[0] - batched[2]).max() > 1e-3  # different seeds differ


def test_requests_are_batched_by_shared_settings_and_returned_in_order(loaded, monkeypatch):
    lp = loaded["eps_file"]
    calls = []
    original = lp.run_batch

    def spy(reqs):
        calls.append([r.seed for r in reqs])
        return original(reqs)

    monkeypatch.setattr(lp, "run_batch", spy)
    requests = [req(seed=1), req(seed=2, steps=3), req(seed=3), req(seed=4, prompt="a BREAK b"), req(seed=5), req(seed=6)]
    images = lp.generate_arrays(requests, batch_size=2)
    # same settings and chunk count share a batch (at most batch_size); others get their own
    assert calls == [[1, 3], [5, 6], [2], [4]]
    for i in (1, 4):
        np.testing.assert_allclose(images[i], original([requests[i]])[0], atol=2e-4)


def test_generate_returns_pil_images_in_request_order(tiny_models, fresh_cache):
    spec = VariantSpec("eps", "single_file", tiny_models.eps_file)
    requests = [GenerationRequest("1girl", seed=s, steps=1, width=256, height=256) for s in (1, 2, 1)]
    images = generate(spec, requests, batch_size=2)
    assert [im.size for im in images] == [(256, 256)] * 3
    assert images[0].mode == "RGB"
    # same request: equal up to float rounding between a batch of 2 and a batch of 1
    assert np.abs(np.asarray(images[0], dtype=int) - np.asarray(images[2], dtype=int)).max() <= 1
    assert not np.array_equal(np.asarray(images[0]), np.asarray(images[1]))


def test_bare_generate_gives_the_same_images(tiny_models, fresh_cache):
    spec = VariantSpec("eps", "single_file", tiny_models.eps_file)
    requests = [GenerationRequest("1girl BREAK smile", seed=s, steps=2, width=256, height=256, sampler="Euler a") for s in (1, 2)]
    ours = generate(spec, requests, batch_size=2)
    bare = bare_generate(spec, requests)
    for a, b in zip(ours, bare):
        assert np.abs(np.asarray(a, dtype=int) - np.asarray(b, dtype=int)).max() <= 1


# -- LoRAs -----------------------------------------------------------------------------------------------


def test_lora_changes_the_output_and_its_weight_scales_the_change(tiny_models, loaded):
    import torch

    from generation.pipelines.loading import load_pipeline

    r = req(seed=4)
    plain = loaded["eps_file"]
    base = plain.generate_arrays([r])[0]
    with_lora = {}
    for name, weight in [("kohya", 0.0), ("kohya", 0.5), ("kohya", 1.0), ("diffusers", 1.0)]:
        spec = VariantSpec("l", "single_file", tiny_models.eps_file, loras=(LoraSpec(tiny_models[f"lora_{name}"], weight),))
        with_lora[name, weight] = load_pipeline(spec, "cpu")
    image = {k: lp.generate_arrays([r])[0] for k, lp in with_lora.items()}
    diff = {k: np.abs(im - base).mean() for k, im in image.items()}
    # weight 0 is the base model, exactly: every fused weight is bit-for-bit the base's (the images then agree up
    # to CPU matmul kernels, which may sum in another order for tensors at other addresses)
    for component in ("unet", "text_encoder", "text_encoder_2"):
        a = getattr(plain.pipe, component).state_dict()
        b = getattr(with_lora["kohya", 0.0].pipe, component).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), component
    assert diff["kohya", 0.0] < 1e-5
    assert diff["kohya", 0.5] > 1e-3 and diff["kohya", 1.0] > 1e-3
    # the weight scales the change where it is applied, in the fused weights: delta(0.5) = delta(1.0) / 2 (the
    # image change need not grow with it: sampling is not linear, and on the pre-trained tiny model it did not)
    moved = 0
    for component in ("unet", "text_encoder", "text_encoder_2"):
        a = getattr(plain.pipe, component).state_dict()
        half = getattr(with_lora["kohya", 0.5].pipe, component).state_dict()
        full = getattr(with_lora["kohya", 1.0].pipe, component).state_dict()
        for k in a:
            d_full = (full[k].double() - a[k].double())
            if d_full.abs().max() > 0:
                moved += 1
                torch.testing.assert_close(half[k].double() - a[k].double(), d_full / 2, rtol=1e-3, atol=1e-6)
    assert moved > 0
    # the diffusers-format copy of the same LoRA gives the same image
    np.testing.assert_allclose(image["diffusers", 1.0], image["kohya", 1.0], atol=1e-4)
    # the kohya LoRA reaches the UNet and both text encoders, fused: no adapter layers are left behind
    for component in ("unet", "text_encoder", "text_encoder_2"):
        a = getattr(plain.pipe, component).state_dict()
        b = getattr(with_lora["kohya", 1.0].pipe, component).state_dict()
        assert a.keys() == b.keys(), component
        assert any(not torch.equal(a[k], b[k]) for k in a), component


# -- the pipeline cache ----------------------------------------------------------------------------------


def test_a_job_of_models_times_prompts_loads_each_model_once(tiny_models, fresh_cache):
    models = [
        VariantSpec("m-eps", "single_file", tiny_models.eps_file),
        VariantSpec("m-v", "diffusers", tiny_models.v_dir, prediction_type="v"),
    ]
    prompts = ["1girl", "scenery", "cat"]
    for prompt in prompts:
        for model in models:
            (image,) = generate(model, [GenerationRequest(prompt, steps=1, width=256, height=256)])
            assert image.size == (256, 256)
    assert fresh_cache.loads == len(models)
    assert fresh_cache.hits == len(models) * len(prompts) - len(models)
    assert pipeline_cache() is fresh_cache


class _Stub:
    def __init__(self, spec, nbytes):
        self.spec, self.nbytes = spec, nbytes


def test_the_cache_key_includes_the_lora_set():
    cache = PipelineCache(max_entries=4, loader=lambda spec, device: _Stub(spec, 1))
    plain = VariantSpec("x", "single_file", "/m.safetensors")
    with_lora = VariantSpec("x", "single_file", "/m.safetensors", loras=(LoraSpec("/l.safetensors", 0.7),))
    other_weight = VariantSpec("x", "single_file", "/m.safetensors", loras=(LoraSpec("/l.safetensors", 0.3),))
    for spec in (plain, with_lora, other_weight, plain, with_lora, VariantSpec("x", "single_file", "/m.safetensors")):
        assert cache.get(spec, "cpu").spec == spec
    assert cache.loads == 3
    cache.get(plain, "cuda:1")  # and the device
    assert cache.loads == 4


def test_lru_cache_evicts_the_least_recently_used_by_count():
    loaded = []
    cache = PipelineCache(max_entries=2, loader=lambda spec, device: loaded.append(spec.key) or _Stub(spec, 1))
    a, b, c = (VariantSpec(k, "diffusers", "/x") for k in "abc")
    for spec in (a, b, a, c, a, b):
        assert cache.get(spec, "cpu").spec == spec
    assert loaded == ["a", "b", "c", "b"]  # c evicted b (a was used more recently); b then evicted c
    assert cache.loads == 4 and len(cache) == 2
    cache.clear()
    assert len(cache) == 0 and cache.loads == 4


def test_a_checkpoint_replaced_on_disk_is_reloaded(tmp_path):
    import os

    path = tmp_path / "m.safetensors"
    path.write_bytes(b"v1")
    cache = PipelineCache(max_entries=2, loader=lambda spec, device: _Stub(spec, 1))
    spec = VariantSpec("m", "single_file", str(path))
    first = cache.get(spec, "cpu")
    assert cache.get(spec, "cpu") is first
    path.write_bytes(b"version 2")
    os.utime(path, ns=(1, 1))
    assert cache.get(spec, "cpu") is not first
    assert cache.loads == 2 and len(cache) == 1


def test_lru_cache_can_be_bounded_by_memory():
    cache = PipelineCache(max_entries=10, max_bytes=250, loader=lambda spec, device: _Stub(spec, 100))
    for key in "abcd":
        cache.get(VariantSpec(key, "diffusers", "/x"), "cpu")
    assert [spec.key for spec, _ in cache.keys()] == ["c", "d"]
    assert cache.evictions == 2


def test_cache_size_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("PIPELINE_CACHE_SIZE", "3")
    monkeypatch.setenv("PIPELINE_CACHE_MAX_MB", "2")
    cache = PipelineCache()
    assert cache.max_entries == 3 and cache.max_bytes == 2 * 1024 * 1024
    monkeypatch.setenv("PIPELINE_CACHE_SIZE", "lots")
    with pytest.raises(GenerationError, match="PIPELINE_CACHE_SIZE must be a whole number"):
        PipelineCache()


def test_out_of_memory_on_load_empties_the_cache_and_retries_once():
    attempts = []

    def loader(spec, device):
        attempts.append(spec.key)
        if spec.key == "big" and attempts.count("big") == 1:
            raise OutOfMemory("out of memory loading big")
        return _Stub(spec, 1)

    cache = PipelineCache(max_entries=3, loader=loader)
    cache.get(VariantSpec("small", "diffusers", "/x"), "cpu")
    cache.get(VariantSpec("big", "diffusers", "/x"), "cpu")
    assert attempts == ["small", "big", "big"]
    assert [spec.key for spec, _ in cache.keys()] == ["big"]


# -- errors, devices, no network -------------------------------------------------------------------------


def test_cuda_out_of_memory_becomes_out_of_memory(loaded, monkeypatch):
    import torch

    lp = loaded["eps_file"]

    def boom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(type(lp.pipe), "__call__", boom)
    with pytest.raises(OutOfMemory, match="out of GPU memory generating 2 image") as info:
        lp.generate_arrays([req(seed=1), req(seed=2)])
    assert isinstance(info.value, GenerationError)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(width=250), "width must be a multiple of 8"),
        (dict(height=128), "height must be from 256 to 2048"),
        (dict(width=2056), "width must be from 256 to 2048"),
        (dict(width=2048, height=2056), "height must be from 256 to 2048"),
        (dict(sampler="Euler z"), "unknown sampler 'Euler z'"),
        (dict(steps=0), "steps must be"),
        (dict(cfg_scale=-1.0), "CFG scale"),
        (dict(seed=-5), "seed must be"),
        (dict(clip_skip=0), "clip skip"),
        (dict(guidance_rescale=1.5), "guidance rescale"),
    ],
)
def test_bad_settings_are_refused_with_a_clear_message(change, message):
    with pytest.raises(GenerationError, match=message):
        validate_request(GenerationRequest("x", **change))


def test_size_limits_allow_sdxl_sizes_up_to_2048_a_side():
    # 2048x2048 is 4.19 MP, so the 4.2 MP cap never binds before the 2048 side limit does
    for w, h in [(1024, 1024), (832, 1216), (1248, 1824), (2048, 2048), (256, 256), (264, 2048)]:
        validate_request(GenerationRequest("x", width=w, height=h))


def test_device_resolution(monkeypatch):
    import torch

    from generation.pipelines.loading import resolve_device

    monkeypatch.setenv("GENERATION_DEVICE", "cpu")
    assert resolve_device() == "cpu"
    monkeypatch.setenv("GENERATION_DEVICE", "auto")
    assert resolve_device() == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(GenerationError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(GenerationError, match="CUDA is not available"):
            resolve_device("cuda:0")


def test_nothing_reaches_the_network(tiny_models, fresh_cache, monkeypatch):
    import os

    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access attempted in a test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    r = GenerationRequest("1girl BREAK (smile:1.1)", steps=1, width=256, height=256)
    for spec in (
        VariantSpec("n1", "single_file", tiny_models.v_file, prediction_type="v", loras=(LoraSpec(tiny_models.lora_kohya),)),
        VariantSpec("n2", "diffusers", tiny_models.eps_dir, loras=(LoraSpec(tiny_models.lora_diffusers, 0.5),)),
    ):
        assert generate(spec, [r])[0].size == (256, 256)
    assert attempts == []
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
