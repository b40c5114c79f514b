"""Settings are checked before anything runs: each problem a clear one-line message; the trainers import no Django
(and the web-facing modules no torch)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from training.trainers.config import (
    ParentModel,
    RewardConfig,
    TrainConfig,
    config_errors,
    defaults,
    from_json,
    to_json,
    validate,
)
from training.trainers.errors import TrainingError

from .conftest import parent, paths, small

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("changes, prediction, message", [
    (dict(noise_offset=0.05, method="sft"), "v", "noise_offset is an epsilon-only setting"),
    (dict(scale_v_pred_loss_like_noise_pred=True, method="sft"), "eps", "scale_v_pred_loss_like_noise_pred is for v"),
    (dict(min_snr_gamma=5.0), "eps", "min_snr_gamma is a supervised-loss setting; dpo does not use it"),
    (dict(network_train_unet_only=False, cache_text_encoder_outputs=False), "eps", "dpo trains the UNet LoRA only"),
    (dict(method="sft", network_train_unet_only=False), "eps", "cache_text_encoder_outputs needs frozen text encoders"),
    (dict(lr_scheduler="cosine_with_hard_restarts"), "eps", "unknown lr_scheduler"),
    (dict(lr_scheduler="constant", lr_warmup_steps=10), "eps", "constant takes no warm-up"),
    (dict(resolution=100), "eps", "resolution must be a multiple of 64"),
    (dict(mixed_precision="fp8"), "eps", "mixed_precision must be one of"),
    (dict(train_batch_size=0), "eps", "train_batch_size must be a whole number from 1 to"),
    (dict(method="sft", kto_weight=1.0), "eps", "kto_weight applies to dpo only"),
    (dict(max_train_steps=9_999_999_999_999_999_999), "eps", "max_train_steps must be a whole number from 1 to"),
    (dict(network_dim=10**12), "eps", "network_dim must be a whole number from 1 to"),
    (dict(seed=-1), "eps", "seed must be a whole number from 0"),
    (dict(resolution=64 * 1000), "eps", "resolution must be at most 8192"),
])
def test_bad_settings_are_one_line_errors(changes, prediction, message):
    errors = config_errors(small(**changes), prediction)
    assert any(message in e for e in errors), errors
    assert all("\n" not in e for e in errors)


def test_defaults_per_method_are_valid_for_eps_and_v():
    for method in ("dpo", "sft"):
        for prediction in ("eps", "v"):
            assert config_errors(defaults(method), prediction) == []
    assert defaults("dpo").beta_dpo == 5000.0 and defaults("sft").lr_scheduler == "cosine_with_restarts"
    with pytest.raises(TrainingError, match="unknown method 'ppo'"):
        defaults("ppo")


def test_parent_problems_are_refused_before_loading(tiny_models, datasets, tmp_path):
    from training.trainers.run import train_lora

    with pytest.raises(TrainingError, match="checkpoint not found"):
        train_lora(small(), ParentModel(str(tmp_path / "nope.safetensors")), paths(tmp_path, datasets["pairs"]))
    with pytest.raises(TrainingError, match="marks itself v-prediction but the parent is given as eps"):
        train_lora(small(), ParentModel(tiny_models["v_file"], "eps", tiny_models["config_dir"]),
                   paths(tmp_path, datasets["pairs"]))
    with pytest.raises(TrainingError, match="noise_offset is an epsilon-only setting"):
        validate(small(method="sft", noise_offset=0.1), parent(tiny_models, "v"))
    with pytest.raises(TrainingError, match="dataset not found"):
        train_lora(small(), parent(tiny_models), paths(tmp_path, tmp_path / "missing.parquet"))


def test_configs_round_trip_through_json_and_unknown_keys_are_refused():
    config = small(method="sft", min_snr_gamma=1.5)
    assert from_json(TrainConfig, to_json(config)) == config
    reward = RewardConfig(open_clip_dir="/x", epochs=10)
    assert from_json(RewardConfig, json.loads(to_json(reward))) == reward
    with pytest.raises(TrainingError, match="unknown TrainConfig setting.s.: network_rank"):
        from_json(TrainConfig, {"network_rank": 8})


def test_cli_reports_a_bad_run_as_one_error_line(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({"config": {"method": "dpo", "lr_scheduler": "nope"},
                                                   "parent": {"path": "/nowhere"}, "paths": {}}))
    out = subprocess.run([sys.executable, "-m", "training.trainers.cli", str(tmp_path / "run.json")], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    (line,) = out.stdout.splitlines()
    assert json.loads(line)["event"] == "error" and "paths" in json.loads(line)["message"]


def test_trainers_import_no_django_and_the_web_side_modules_no_torch():
    code = ("import sys\n"
            "import training.trainers.config, training.trainers.dataset, training.trainers.judge\n"
            "assert 'torch' not in sys.modules and 'django' not in sys.modules, 'light modules'\n"
            "import training.trainers.run, training.trainers.dpo, training.trainers.sft, training.trainers.reward\n"
            "import training.trainers.cli, training.trainers.kohya, training.trainers.embeddings\n"
            "import training.trainers.synthetic, training.trainers.bench\n"
            "assert not [m for m in sys.modules if m == 'django' or m.startswith('django.')], 'django imported'\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
