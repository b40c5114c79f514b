"""Reads of the training app: runs and datasets for the pages, and a run's loss curve."""

from __future__ import annotations

from training.models import PreferenceDataset, TrainingRun


def runs_recent(limit: int = 50) -> list[TrainingRun]:
    return list(TrainingRun.objects.select_related("parent", "dataset", "result_variant", "started_by")[:limit])


def datasets_recent(limit: int = 50) -> list[PreferenceDataset]:
    return list(PreferenceDataset.objects.select_related("created_by")[:limit])


def loss_curve(run: TrainingRun) -> tuple[list[int], list[float]]:
    points = [(m["step"], m["loss"]) for m in run.metrics if "step" in m and isinstance(m.get("loss"), (int, float))]
    return [p[0] for p in points], [float(p[1]) for p in points]
