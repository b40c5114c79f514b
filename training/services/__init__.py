"""Writes of the training app, by concern: ``datasets`` (preference datasets from the vote log), ``runs``
(scheduling, claims, progress, cancel and resume), ``execute`` (one time slice of a run: the task's and
``manage.py train``'s work), ``registration`` (results enrolled as new variants that meet their parent)."""

from training.services.datasets import (
    DatasetFilters,
    dataset_build,
    dataset_expand,
    dataset_write,
    filters_clean,
)
from training.services.execute import (
    RunCancelled,
    SliceOutcome,
    accelerate_command,
    run_execute,
    run_finish,
    slice_train,
)
from training.services.registration import (
    lora_enroll,
    run_card,
    run_register_result,
    run_register_reward_judge,
    variant_enroll,
)
from training.services.runs import (
    MAX_ATTEMPTS,
    config_for,
    method_defaults,
    run_cancel,
    run_claim,
    run_create,
    run_dir,
    run_enqueue,
    run_errors,
    run_fail,
    run_pause,
    run_progress,
    run_resume,
    run_spec,
    worker_name,
)

__all__ = [
    "MAX_ATTEMPTS", "DatasetFilters", "RunCancelled", "SliceOutcome", "accelerate_command", "config_for",
    "dataset_build", "dataset_expand", "dataset_write", "filters_clean", "lora_enroll", "method_defaults",
    "run_cancel", "run_card", "run_claim", "run_create", "run_dir", "run_enqueue", "run_errors", "run_execute",
    "run_fail", "run_finish", "run_pause", "run_progress", "run_register_result", "run_register_reward_judge",
    "run_resume", "run_spec",
    "slice_train", "variant_enroll", "worker_name",
]
