"""The LoRA file people use: kohya names that diffusers (and so A1111 / ComfyUI's kohya loaders) apply, the real
alpha, kohya's ss_* metadata and hashes -- checked by loading it back through diffusers' load_lora_weights and
through our own pipeline loader, whose fused weights must equal base + (alpha / rank) * up @ down."""

import hashlib
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from .conftest import Events, parent, paths, small


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def adapter(tiny_models, datasets, tmp_path_factory):
    """An SFT method with LoRA on the UNet and both text encoders, its weights set to random values (a trained
    adapter), saved in kohya format; plus the fused weights it should give: {component: {module: W}}."""
    from training.trainers.dataset import read_dataset
    from training.trainers.kohya import save_kohya_lora
    from training.trainers.loop import make_accelerator
    from training.trainers.parent import ADAPTER, load_parent
    from training.trainers.sft import SftMethod

    config = small(method="sft", network_train_unet_only=False, cache_text_encoder_outputs=False)
    method = SftMethod(config, load_parent(parent(tiny_models, "eps_file")), read_dataset(datasets["pairs"]),
                       make_accelerator(config))
    g = torch.Generator().manual_seed(11)
    expected = {}
    with torch.no_grad():
        for component in ("unet", "text_encoder", "text_encoder_2"):
            expected[component] = {}
            for name, layer in getattr(method.parent, component).named_modules():
                if hasattr(layer, "lora_A") and ADAPTER in layer.lora_A:
                    a, b = layer.lora_A[ADAPTER].weight, layer.lora_B[ADAPTER].weight
                    a.copy_(torch.randn(a.shape, generator=g) * 0.1)
                    b.copy_(torch.randn(b.shape, generator=g) * 0.1)
                    base = layer.base_layer.weight
                    expected[component][name] = base + (config.network_alpha / config.network_dim) * (b @ a)
    file = tmp_path_factory.mktemp("kohya") / "adapter.safetensors"
    modules = {c: getattr(method.parent, c) for c in ("unet", "text_encoder", "text_encoder_2")}
    save_kohya_lora(file, modules, alpha=config.network_alpha, unet_config=dict(method.parent.unet.config),
                    metadata={"ss_network_dim": "4", "ss_network_alpha": "2.0"})
    return file, expected


def assert_fused(pipe, expected):
    checked = 0
    for component, modules in expected.items():
        root = getattr(pipe, component)
        for name, weight in modules.items():
            fused = root.get_submodule(name).weight
            assert torch.allclose(fused, weight, atol=1e-5), f"{component}.{name}"
            checked += 1
    assert checked == sum(len(m) for m in expected.values()) > 200


def test_names_are_kohyas_sgm_paths_with_the_real_alpha(adapter):
    file, expected = adapter
    tensors = load_file(file)
    names = {k.rsplit(".", 2)[0] if k.endswith(".weight") else k.rsplit(".", 1)[0] for k in tensors}
    assert len(names) == sum(len(m) for m in expected.values())
    assert all(n.startswith(("lora_unet_", "lora_te1_text_model_", "lora_te2_text_model_")) for n in names)
    assert not [n for n in names if "down_blocks" in n or "up_blocks" in n or "mid_block_" in n]  # diffusers names
    assert "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q" in names
    assert "lora_unet_output_blocks_0_1_transformer_blocks_1_ff_net_0_proj" in names
    assert "lora_unet_middle_block_1_proj_in" in names
    assert "lora_te1_text_model_encoder_layers_0_self_attn_q_proj" in names
    assert "lora_te2_text_model_encoder_layers_2_mlp_fc2" in names
    assert {float(v) for k, v in tensors.items() if k.endswith(".alpha")} == {2.0}  # not the rank (4)
    n = 0
    for name in names:
        down, up = tensors[f"{name}.lora_down.weight"], tensors[f"{name}.lora_up.weight"]
        assert down.shape[0] == 4 and up.shape[1] == 4
        n += 1
    assert n == len(names)


def test_diffusers_load_lora_weights_fuses_base_plus_alpha_over_rank_up_down(adapter, tiny_models):
    from diffusers import StableDiffusionXLPipeline

    file, expected = adapter
    pipe = StableDiffusionXLPipeline.from_single_file(tiny_models["eps_file"], config=tiny_models["config_dir"],
                                                      local_files_only=True)
    pipe.load_lora_weights(str(file), adapter_name="trained")
    pipe.fuse_lora(lora_scale=1.0)
    pipe.unload_lora_weights()
    assert_fused(pipe, expected)


def test_our_pipeline_loader_fuses_the_same_weights(adapter, tiny_models):
    from generation.pipelines import LoraSpec, VariantSpec
    from generation.pipelines.loading import load_pipeline

    file, expected = adapter
    spec = VariantSpec(key="child", source_type="single_file", source_path=tiny_models["eps_file"],
                       config_path=tiny_models["config_dir"], loras=(LoraSpec(str(file), 1.0),))
    assert_fused(load_pipeline(spec, "cpu").pipe, expected)


def test_a_trained_file_carries_kohyas_metadata_and_hashes(tiny_models, datasets, tmp_path):
    from training.trainers.kohya import read_metadata
    from training.trainers.run import train_lora

    result = train_lora(small(max_train_steps=2), parent(tiny_models, "v_file"), paths(tmp_path, datasets["pairs"]),
                        on_progress=Events())
    meta = read_metadata(result.lora_file)
    assert meta["ss_network_module"] == "networks.lora"
    assert (meta["ss_network_dim"], meta["ss_network_alpha"]) == ("4", "2.0")
    assert meta["ss_base_model_version"] == "sdxl_base_v1-0" and meta["ss_v2"] == "False"
    assert meta["ss_steps"] == "2" and meta["ss_max_train_steps"] == "2"
    assert meta["ss_new_sd_model_hash"] == sha256(tiny_models["v_file"])
    assert meta["ss_sd_model_name"] == "v.safetensors"
    assert meta["ss_dataset_hash"] == sha256(datasets["pairs"])
    assert meta["ss_v_parameterization"] == "True" and meta["ss_zero_terminal_snr"] == "True"
    assert meta["modelspec.prediction_type"] == "v"
    assert meta["ss_training_method"] == "diffusion-dpo" and meta["ss_beta_dpo"] == "5000.0"
    raw = Path(result.lora_file).read_bytes()
    header = int.from_bytes(raw[:8], "little")
    assert meta["sshs_model_hash"] == hashlib.sha256(raw[8 + header:]).hexdigest()  # kohya's addnet hash
    assert oct(Path(result.lora_file).stat().st_mode & 0o777) == "0o644"
