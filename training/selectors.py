"""Reads of the training app: runs and datasets for the pages, a run's loss curve and its sample images."""

from __future__ import annotations

from training.models import PreferenceDataset, TrainingRun


def runs_recent(limit: int = 50) -> list[TrainingRun]:
    return list(TrainingRun.objects.select_related("parent", "dataset", "result_variant", "started_by")[:limit])


def datasets_recent(limit: int = 50) -> list[PreferenceDataset]:
    return list(PreferenceDataset.objects.select_related("created_by")[:limit])


def loss_curve(run: TrainingRun) -> tuple[list[int], list[float]]:
    points = [(m["step"], m["loss"]) for m in run.metrics if "step" in m and isinstance(m.get("loss"), (int, float))]
    return [p[0] for p in points], [float(p[1]) for p in points]


def run_samples(run: TrainingRun) -> list[dict]:
    """The run's sample images, newest step first, each {"n" (its index in ``run.samples``), "step", "index",
    "prompt", "path"}."""
    out = [dict(s, n=n) for n, s in enumerate(run.samples) if isinstance(s, dict) and s.get("path")]
    return sorted(out, key=lambda s: (-int(s.get("step") or 0), int(s.get("index") or 0)))
