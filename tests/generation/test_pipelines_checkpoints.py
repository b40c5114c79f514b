"""inspect_checkpoint: eps vs v detection, one-line errors for bad files; the tiny single files' layout."""

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from generation.pipelines import CheckpointError, GenerationError, inspect_checkpoint


def test_single_files_are_detected_as_eps_and_v(tiny_models):
    eps = inspect_checkpoint(tiny_models.eps_file)
    assert (eps.source_type, eps.prediction_type, eps.has_ztsnr) == ("single_file", "eps", False)
    v = inspect_checkpoint(tiny_models.v_file)
    assert (v.source_type, v.prediction_type, v.has_ztsnr) == ("single_file", "v", True)
    assert any("v_pred" in n for n in v.notes) and any("ztsnr" in n for n in v.notes)
    assert any("bundled tiny config" in n for n in eps.notes)


def test_diffusers_folders_are_detected_as_eps_and_v(tiny_models):
    eps = inspect_checkpoint(tiny_models.eps_dir)
    assert (eps.source_type, eps.prediction_type, eps.has_ztsnr) == ("diffusers", "eps", False)
    v = inspect_checkpoint(tiny_models.v_dir)
    assert (v.source_type, v.prediction_type, v.has_ztsnr) == ("diffusers", "v", True)


def _write_safetensors(path: Path, tensors: dict[str, list[int]], *, truncate: int = 0) -> None:
    header, offset = {}, 0
    for name, shape in tensors.items():
        n = 4
        for d in shape:
            n *= d
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * max(0, offset - truncate))


def _bad_paths(tmp_path: Path, tiny_models) -> dict[str, tuple[str, str]]:
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "old.ckpt").write_bytes(b"\x80\x02pickle")
    (tmp_path / "garbage.safetensors").write_bytes(b"this is not a safetensors file at all")
    (tmp_path / "empty.safetensors").write_bytes(b"")
    _write_safetensors(tmp_path / "truncated.safetensors", {"model.diffusion_model.input_blocks.0.0.weight": [4, 4]}, truncate=8)
    _write_safetensors(tmp_path / "lora.safetensors", {"lora_unet_x.lora_down.weight": [4, 4]})
    # an SD1.5-like file: UNet, VAE and CLIP-L, but no second text encoder and no SDXL label_emb
    _write_safetensors(
        tmp_path / "sd15.safetensors",
        {
            "model.diffusion_model.input_blocks.0.0.weight": [2, 2],
            "first_stage_model.encoder.conv_in.weight": [2, 2],
            "conditioner.embedders.0.transformer.text_model.embeddings.position_embedding.weight": [2, 2],
        },
    )
    (tmp_path / "folder").mkdir()
    half = tmp_path / "half_diffusers"
    half.mkdir()
    (half / "model_index.json").write_text(json.dumps({"unet": ["diffusers", "UNet2DConditionModel"]}))
    return {
        "": ("", "no checkpoint path given"),
        "missing": (str(tmp_path / "nope.safetensors"), "checkpoint not found"),
        "text": (str(tmp_path / "notes.txt"), "not a .safetensors file or a diffusers folder"),
        "pickle": (str(tmp_path / "old.ckpt"), "pickled checkpoints are not loaded"),
        "garbage": (str(tmp_path / "garbage.safetensors"), "unreadable checkpoint"),
        "empty": (str(tmp_path / "empty.safetensors"), "unreadable checkpoint"),
        "truncated": (str(tmp_path / "truncated.safetensors"), "truncated"),
        "lora": (str(tmp_path / "lora.safetensors"), "not an SDXL checkpoint"),
        "sd15": (str(tmp_path / "sd15.safetensors"), "second text encoder"),
        "folder": (str(tmp_path / "folder"), "no model_index.json"),
        "half": (str(half), "lacks unet, vae, text_encoder, text_encoder_2"),
    }


@pytest.mark.parametrize(
    "case", ["", "missing", "text", "pickle", "garbage", "empty", "truncated", "lora", "sd15", "folder", "half"]
)
def test_bad_checkpoints_are_refused_with_one_line(tmp_path, tiny_models, case):
    path, expected = _bad_paths(tmp_path, tiny_models)[case]
    with pytest.raises(CheckpointError) as info:
        inspect_checkpoint(path)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message and len(message) < 300
    assert isinstance(info.value, GenerationError)


def test_single_file_lacking_only_the_vae_names_it(tmp_path, tiny_models):
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(tiny_models.eps_file, "pt") as fh:
        sd = {k: fh.get_tensor(k) for k in fh.keys() if not k.startswith("first_stage_model.")}
    save_file(sd, str(tmp_path / "novae.safetensors"))
    with pytest.raises(CheckpointError, match="lacks the VAE weights"):
        inspect_checkpoint(str(tmp_path / "novae.safetensors"))


def test_single_file_uses_the_sgm_a1111_key_layout(tiny_models):
    from safetensors import safe_open

    with safe_open(tiny_models.v_file, "pt") as fh:
        keys = set(fh.keys())
    assert {"v_pred", "ztsnr"} <= keys
    for key in [
        "model.diffusion_model.input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight",
        "model.diffusion_model.middle_block.1.proj_in.weight",
        "model.diffusion_model.output_blocks.2.2.conv.weight",
        "model.diffusion_model.output_blocks.5.2.conv.weight",
        "model.diffusion_model.input_blocks.3.0.op.weight",
        "model.diffusion_model.label_emb.0.0.weight",
        "first_stage_model.decoder.up.3.block.0.conv1.weight",
        "first_stage_model.encoder.mid.attn_1.q.weight",
        "conditioner.embedders.0.transformer.text_model.encoder.layers.0.self_attn.q_proj.weight",
        "conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_weight",
        "conditioner.embedders.1.model.text_projection",
    ]:
        assert key in keys, key
    assert not any(k.startswith(("unet.", "vae.", "text_encoder")) for k in keys)


def test_kohya_lora_uses_kohya_names(tiny_models):
    from safetensors import safe_open

    with safe_open(tiny_models.lora_kohya, "pt") as fh:
        keys = list(fh.keys())
    assert any(k.startswith("lora_unet_input_blocks_") and k.endswith(".lora_down.weight") for k in keys)
    assert any(k.startswith("lora_unet_middle_block_1_transformer_blocks_0_attn1_to_q") for k in keys)
    assert any(k.startswith("lora_te1_text_model_encoder_layers_") for k in keys)
    assert any(k.startswith("lora_te2_text_model_encoder_layers_") for k in keys)
    assert any(k.endswith(".alpha") for k in keys)


def test_importing_the_interface_and_inspecting_does_not_import_torch(tiny_models):
    code = (
        "import sys; from generation.pipelines import inspect_checkpoint, validate_request, GenerationRequest;"
        f"inspect_checkpoint({tiny_models.v_file!r}); validate_request(GenerationRequest('x'));"
        "heavy = [m for m in ('torch', 'diffusers', 'transformers', 'safetensors.torch') if m in sys.modules];"
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_make_tiny_models_is_idempotent(tiny_models):
    from django.core.management import call_command
    from io import StringIO

    before = {p: Path(p).stat().st_mtime_ns for p in (tiny_models.eps_file, tiny_models.v_file, tiny_models.lora_kohya)}
    out = StringIO()
    call_command("make_tiny_models", tiny_models.root, stdout=out)
    assert "already built" in out.getvalue()
    assert "eps_file: " + tiny_models.eps_file in out.getvalue()
    assert {p: Path(p).stat().st_mtime_ns for p in before} == before


def test_tiny_builds_are_deterministic(tiny_models):
    import torch

    from generation.tiny import build_tiny_pipeline

    a = build_tiny_pipeline(seed=7, config_dir=tiny_models.config_dir)
    b = build_tiny_pipeline(seed=7, config_dir=tiny_models.config_dir)
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        sa, sb = getattr(a, name).state_dict(), getattr(b, name).state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa), name


def test_bundled_sdxl_config_describes_real_sdxl_and_its_single_file_layout(tmp_path, monkeypatch):
    """Real Illustrious/SDXL single files load with the bundled config (checked on empty, meta-device weights)."""
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, infer_diffusers_model_type
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    from generation.pipelines.configs import bundled_config_dir, guess_bundled_config
    from generation.pipelines.sgm import clip_g_to_sgm, clip_l_to_sgm, unet_to_sgm, vae_to_sgm

    monkeypatch.setenv("ARENA_CONFIG_CACHE", str(tmp_path))
    folder = str(bundled_config_dir("sdxl"))
    assert bundled_config_dir("sdxl") == Path(folder)  # materialised once
    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(folder, subfolder="unet"))
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(folder, subfolder="vae"))
        te1 = CLIPTextModel(CLIPTextConfig.from_pretrained(folder, subfolder="text_encoder"))
        te2 = CLIPTextModelWithProjection(CLIPTextConfig.from_pretrained(folder, subfolder="text_encoder_2"))
    sizes = [sum(p.numel() for p in m.parameters()) for m in (unet, vae, te1, te2)]
    assert sizes == [2_567_463_684, 83_653_863, 123_060_480, 694_659_840]  # SDXL base 1.0

    sgm = {**unet_to_sgm(unet.state_dict(), dict(unet.config)), **vae_to_sgm(vae.state_dict(), dict(vae.config)),
           **clip_l_to_sgm(te1.state_dict()), **clip_g_to_sgm(te2.state_dict())}
    assert infer_diffusers_model_type(sgm) == "xl_base"
    assert guess_bundled_config({k: tuple(v.shape) for k, v in sgm.items()}) == "sdxl"
    for key in ["model.diffusion_model.input_blocks.7.1.transformer_blocks.9.attn1.to_k.weight",
                "model.diffusion_model.output_blocks.8.0.skip_connection.weight",
                "conditioner.embedders.1.model.transformer.resblocks.31.mlp.c_proj.bias"]:
        assert key in sgm
    # diffusers' own converter maps our SGM names back onto every UNet parameter
    back = convert_ldm_unet_checkpoint(sgm, dict(unet.config))
    assert set(back) == set(unet.state_dict())
    tok2 = CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer_2", local_files_only=True)
    assert tok2.pad_token == "!" and tok2.pad_token_id == 0
