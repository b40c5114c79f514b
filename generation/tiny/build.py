"""Tiny SDXL-shaped models, pre-trained on procedural captioned pictures (``pretrain``), for the demo and the tests.

Same diffusers / transformers classes as a real SDXL checkpoint (UNet2DConditionModel with text_time added
conditioning, AutoencoderKL, CLIPTextModel + CLIPTextModelWithProjection, CLIPTokenizers built from open_clip's
BPE vocabulary), tiny widths. Written as:

    eps/                     diffusers folder, epsilon prediction
    eps.safetensors          the same weights in the original SGM/A1111 single-file layout
    v/                       diffusers folder, v-prediction + zero terminal SNR scheduler config
    v.safetensors            single file with the ``v_pred`` and ``ztsnr`` marker keys
    lora_kohya.safetensors   a kohya-format LoRA (lora_unet_*, lora_te1_*, lora_te2_*, .alpha)
    lora_diffusers/          the same LoRA in diffusers format (pytorch_lora_weights.safetensors)
    config/                  the local diffusers config folder the single files load with
    manifest.json            the build key (content hash), what was written, the pre-training's measurements
                             (re-running with the same key in place is a no-op)

Everything is seeded. The pre-trained models draw what their prompt names (colours, shapes, place, size,
brightness, a few scenes; see ``shapes``), and vary with the seed; ``pretrained=False`` gives the seeded random
weights (noise images) of the first builds.
Nothing here downloads anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

# Bump when the files change shape or content so old builds are rebuilt.
BUILD_VERSION = 2
LORA_RANK = 4
LORA_ALPHA = 2.0


@dataclass(frozen=True)
class TinyModels:
    root: str
    eps_dir: str
    eps_file: str
    v_dir: str
    v_file: str
    lora_kohya: str
    lora_diffusers: str
    config_dir: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    def __getitem__(self, key: str) -> str:  # dict-style access as well: tiny_models["eps_dir"]
        return getattr(self, key)


def _paths(root: Path) -> TinyModels:
    return TinyModels(
        root=str(root),
        eps_dir=str(root / "eps"),
        eps_file=str(root / "eps.safetensors"),
        v_dir=str(root / "v"),
        v_file=str(root / "v.safetensors"),
        lora_kohya=str(root / "lora_kohya.safetensors"),
        lora_diffusers=str(root / "lora_diffusers"),
        config_dir=str(root / "config"),
    )


def build_tiny_pipeline(*, seed: int, prediction_type: str = "epsilon", config_dir: str | os.PathLike):
    """A StableDiffusionXLPipeline with the tiny configs and seeded random weights (float32, CPU)."""
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    from generation.pipelines.configs import TINY

    config_dir = Path(config_dir)

    def seeded(offset: int):
        torch.manual_seed(seed * 1000 + offset)

    seeded(1)
    unet = UNet2DConditionModel.from_config({k: v for k, v in TINY["unet"].items() if not k.startswith("_")})
    seeded(2)
    vae = AutoencoderKL.from_config({k: v for k, v in TINY["vae"].items() if not k.startswith("_")})
    seeded(3)
    te1 = CLIPTextModel(CLIPTextConfig.from_pretrained(str(config_dir / "text_encoder"), local_files_only=True))
    seeded(4)
    te2 = CLIPTextModelWithProjection(
        CLIPTextConfig.from_pretrained(str(config_dir / "text_encoder_2"), local_files_only=True)
    )
    scheduler_config = EulerDiscreteScheduler.load_config(str(config_dir / "scheduler"), local_files_only=True)
    if prediction_type == "v_prediction":
        scheduler_config.update(prediction_type="v_prediction", rescale_betas_zero_snr=True, timestep_spacing="trailing")
    scheduler = EulerDiscreteScheduler.from_config(scheduler_config)
    pipe = StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=te1,
        text_encoder_2=te2,
        tokenizer=CLIPTokenizer.from_pretrained(str(config_dir / "tokenizer"), local_files_only=True),
        tokenizer_2=CLIPTokenizer.from_pretrained(str(config_dir / "tokenizer_2"), local_files_only=True),
        unet=unet,
        scheduler=scheduler,
    )
    for module in (unet, vae, te1, te2):
        module.eval().requires_grad_(False)
    return pipe


def write_single_file(pipe, path: str | os.PathLike, *, v_pred: bool = False) -> None:
    """The pipeline's weights as one .safetensors file in the SGM/A1111 layout (+ v_pred/ztsnr markers)."""
    import torch
    from safetensors.torch import save_file

    from generation.pipelines.sgm import pipeline_to_sgm

    sd = pipeline_to_sgm(pipe)
    metadata = {"format": "pt", "modelspec.architecture": "stable-diffusion-xl-v1-base", "arena.tiny": "1"}
    if v_pred:
        # As NoobAI-XL / Illustrious v-pred checkpoints mark themselves: empty tensors under these names.
        sd["v_pred"] = torch.tensor([])
        sd["ztsnr"] = torch.tensor([])
        metadata["modelspec.prediction_type"] = "v"
    save_file(sd, str(path), metadata=metadata)


def lora_target_modules(pipe) -> dict[str, list[tuple[str, object]]]:
    """The Linear layers a typical kohya SDXL LoRA trains: UNet attention/FF/proj, text encoder attn + MLP."""
    import torch

    targets: dict[str, list[tuple[str, object]]] = {"unet": [], "text_encoder": [], "text_encoder_2": []}
    for name, module in pipe.unet.named_modules():
        if ".attentions." in name and isinstance(module, torch.nn.Linear):
            if any(s in name for s in ("to_q", "to_k", "to_v", "to_out.0", "ff.net", "proj_in", "proj_out")):
                targets["unet"].append((name, module))
    for te in ("text_encoder", "text_encoder_2"):
        for name, module in getattr(pipe, te).named_modules():
            if isinstance(module, torch.nn.Linear) and ".layers." in name and ("self_attn" in name or "mlp" in name):
                targets[te].append((name, module))
    return targets


def write_kohya_lora(pipe, path: str | os.PathLike, *, seed: int, rank: int = LORA_RANK, alpha: float = LORA_ALPHA):
    """A kohya-format SDXL LoRA for ``pipe`` (random, seeded): keys in the SGM naming kohya's sd-scripts write."""
    import torch
    from safetensors.torch import save_file

    from generation.pipelines.sgm import unet_module_to_kohya

    gen = torch.Generator().manual_seed(seed)
    unet_config = dict(pipe.unet.config)
    sd = {}
    targets = lora_target_modules(pipe)
    for kind, modules in targets.items():
        for name, module in modules:
            if kind == "unet":
                lora_name = unet_module_to_kohya(name, unet_config)
            else:
                prefix = "lora_te1_" if kind == "text_encoder" else "lora_te2_"
                full = name if name.startswith("text_model.") else "text_model." + name
                lora_name = prefix + full.replace(".", "_")
            down = torch.randn(rank, module.in_features, generator=gen) * (1.0 / module.in_features**0.5)
            up = torch.randn(module.out_features, rank, generator=gen) * 0.5
            sd[f"{lora_name}.lora_down.weight"] = down.contiguous()
            sd[f"{lora_name}.lora_up.weight"] = up.contiguous()
            sd[f"{lora_name}.alpha"] = torch.tensor(float(alpha))
    save_file(sd, str(path), metadata={"ss_network_module": "networks.lora", "ss_network_dim": str(rank),
                                       "ss_network_alpha": str(alpha), "ss_base_model_version": "sdxl_base_v1-0"})


def write_diffusers_lora(pipe, kohya_path: str | os.PathLike, folder: str | os.PathLike) -> None:
    """The kohya LoRA in diffusers/peft format (pytorch_lora_weights.safetensors), converted by diffusers itself.

    Loads the kohya file into ``pipe`` through ``load_lora_weights`` (diffusers' kohya converter + peft), reads
    the injected lora_A / lora_B back, folds kohya's alpha/rank scaling into lora_A (the saved file carries no
    alphas, so it loads with scale 1) and saves with ``save_lora_weights``. ``pipe`` is left without adapters.
    """
    from diffusers import StableDiffusionXLPipeline
    from safetensors.torch import load_file

    name = "tiny_kohya"
    pipe.load_lora_weights(load_file(str(kohya_path)), adapter_name=name)
    layers = {}
    for component in ("unet", "text_encoder", "text_encoder_2"):
        sd = {}
        for module_name, module in getattr(pipe, component).named_modules():
            if hasattr(module, "lora_A") and name in getattr(module, "lora_A", {}):
                scale = module.scaling[name]
                sd[f"{module_name}.lora_A.weight"] = (module.lora_A[name].weight * scale).detach().clone()
                sd[f"{module_name}.lora_B.weight"] = module.lora_B[name].weight.detach().clone()
        layers[component] = sd
    pipe.delete_adapters(name)
    StableDiffusionXLPipeline.save_lora_weights(
        str(folder),
        unet_lora_layers=layers["unet"],
        text_encoder_lora_layers=layers["text_encoder"],
        text_encoder_2_lora_layers=layers["text_encoder_2"],
        safe_serialization=True,
    )


def training_scheduler(scheduler_config, prediction_type: str):
    """DDPMScheduler on the tiny models' betas: epsilon, or v-prediction with zero terminal SNR (as the v variant
    samples); ``prediction_type`` is diffusers' name ("epsilon" | "v_prediction")."""
    from diffusers import DDPMScheduler

    config = {k: v for k, v in dict(scheduler_config).items() if not k.startswith("_")}
    config["prediction_type"] = prediction_type
    config["rescale_betas_zero_snr"] = prediction_type == "v_prediction"
    return DDPMScheduler.from_config(config)


def build_key(*, pretrained: bool = True) -> str:
    """Content key of a build: this package's code (its syntax trees, docstrings and comments left out), the
    tiny configs, and the torch / diffusers / transformers versions (a change of any of them rebuilds)."""
    import importlib.metadata

    from generation.pipelines.configs import TINY

    h = hashlib.sha256()
    h.update(f"version={BUILD_VERSION};pretrained={pretrained}".encode())
    for f in sorted(Path(__file__).parent.glob("*.py")):
        h.update(f.name.encode())
        h.update(_code_only(f.read_text()).encode())
    h.update(json.dumps(TINY, sort_keys=True, default=str).encode())
    for dist in ("torch", "diffusers", "transformers"):
        try:
            h.update(f"{dist}={importlib.metadata.version(dist)}".encode())
        except importlib.metadata.PackageNotFoundError:
            pass
    return h.hexdigest()[:16]


def _code_only(source: str) -> str:
    """The module's syntax tree without docstrings (comments are not in it): editing prose does not rebuild."""
    import ast

    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(getattr(body[0], "value", None), ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)


def read_manifest(root: str | os.PathLike) -> dict | None:
    try:
        return json.loads(Path(root, "manifest.json").read_text())
    except (OSError, ValueError):
        return None


def _complete(root: Path, key: str) -> bool:
    data = read_manifest(root)
    if not data:
        return False
    return data.get("key") == key and all(Path(p).exists() for p in _paths(root).as_dict().values())


@contextmanager
def _locked(root: Path):
    """An exclusive lock on ``root/.lock``, so concurrent test sessions build once and the others wait."""
    import fcntl

    with open(root / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def make_tiny_models(out_dir: str | os.PathLike, *, force: bool = False, log=None, pretrained: bool = True) -> TinyModels:
    """Build (or find already built) tiny models under ``out_dir`` and return their paths.

    Cached and content-keyed: a complete build with the same ``build_key`` is left alone (the manifest records
    the key, what was written and the pre-training's measurements); a changed source, config or library
    version rebuilds. The pre-training (``pretrain``; ``pretrained=False`` keeps the seeded random weights)
    takes a few minutes on 2 cores, once. Builds into a staging folder next to the target and moves files in
    place under a file lock, so an interrupted run never leaves a half-written model and two processes
    building the same folder build it once.
    """
    root = Path(out_dir).resolve()
    say = log or (lambda msg: None)
    key = build_key(pretrained=pretrained)
    if not force and _complete(root, key):
        say(f"tiny models already built in {root} (key {key})")
        return _paths(root)
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root):
        if not force and _complete(root, key):  # another process built it while we waited
            say(f"tiny models already built in {root} (key {key})")
            return _paths(root)
        _build(root, key, pretrained=pretrained, say=say)
    return _paths(root)


def _build(root: Path, key: str, *, pretrained: bool, say) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from generation.pipelines.configs import TINY, write_config_folder

    started = time.perf_counter()
    staging = Path(tempfile.mkdtemp(prefix=".tiny-build-", dir=root))
    try:
        s = _paths(staging)
        write_config_folder(s.config_dir, TINY)
        say(f"wrote {Path(root, 'config')} (diffusers config folder for the single files)")
        eps = build_tiny_pipeline(seed=1, prediction_type="epsilon", config_dir=s.config_dir)
        v = build_tiny_pipeline(seed=2, prediction_type="v_prediction", config_dir=s.config_dir)
        training = {}
        if pretrained:
            from .pretrain import pretrain

            training = pretrain(eps, v, seed=0, log=say)
        eps.save_pretrained(s.eps_dir, safe_serialization=True)
        write_single_file(eps, s.eps_file)
        v.save_pretrained(s.v_dir, safe_serialization=True)
        write_single_file(v, s.v_file, v_pred=True)
        write_kohya_lora(eps, s.lora_kohya, seed=3)
        write_diffusers_lora(eps, s.lora_kohya, s.lora_diffusers)
        manifest = {"version": BUILD_VERSION, "key": key, "pretrained": pretrained,
                    "build_s": round(time.perf_counter() - started, 1), "torch_threads": _threads(),
                    "training": training,
                    "files": {k: os.path.relpath(p, staging) for k, p in s.as_dict().items() if k != "root"}}
        Path(staging, "manifest.json").write_text(json.dumps(manifest, indent=2))
        final = _paths(root)
        for name, src in s.as_dict().items():
            if name == "root":
                continue
            dst = Path(getattr(final, name))
            if dst.is_dir():
                shutil.rmtree(dst)
            elif dst.exists():
                dst.unlink()
            os.replace(src, dst)
            say(f"wrote {dst}")
        os.replace(staging / "manifest.json", root / "manifest.json")
        say(f"tiny models built in {manifest['build_s']:.0f} s (key {key})")
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _threads() -> int:
    return min(2, os.cpu_count() or 1)
