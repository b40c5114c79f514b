"""Fixtures for the pure trainer tests (training/trainers, no database).

``tiny_models`` (tests/conftest.py) gives the tiny SDXL-shaped models; ``datasets`` a session's synthetic
preference datasets (procedural pictures voted by the synthetic judge, every image with its own seed);
``small`` a TrainConfig sized for the tiny models (64 px, a few steps)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def _keep_loaded_parents():
    """Each tiny parent is loaded from disk once per session; every build gets a deep copy."""
    from training.trainers.parent import keep_loaded_parents

    keep_loaded_parents(True)
    yield
    keep_loaded_parents(False)


@pytest.fixture(scope="session")
def datasets(tmp_path_factory):
    from training.trainers.synthetic import write_synthetic

    root = tmp_path_factory.mktemp("datasets")
    return {
        "pairs": write_synthetic(root / "pairs.parquet", 8, seed=1).path,
        "mixed": write_synthetic(root / "mixed.parquet", 8, ties=3, both_bad=3, seed=2).path,
    }


def small(**changes):
    from training.trainers.config import TrainConfig

    base = dict(method="dpo", max_train_steps=3, train_batch_size=2, resolution=64, learning_rate=1e-3,
                network_dim=4, network_alpha=2.0, checkpointing_steps=2, beta_dpo=5000.0)
    return TrainConfig(**{**base, **changes})


def parent(tiny_models, kind: str = "eps"):
    """eps / v (diffusers folders) or eps_file / v_file (single files), with the right prediction type."""
    from training.trainers.config import ParentModel

    path = tiny_models[{"eps": "eps_dir", "v": "v_dir", "eps_file": "eps_file", "v_file": "v_file"}[kind]]
    config = tiny_models["config_dir"] if kind.endswith("_file") else ""
    return ParentModel(path, "v" if kind.startswith("v") else "eps", config)


def paths(tmp_path, dataset, name: str = "run"):
    from training.trainers.config import RunPaths

    return RunPaths(str(dataset), str(tmp_path / name / "work"), str(tmp_path / name / "out"))


class Events(list):
    """A progress sink that keeps the events."""

    def __call__(self, event):
        self.append(event)

    def of(self, kind):
        return [e for e in self if e["event"] == kind]
