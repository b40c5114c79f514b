"""Forms of the training pages. They parse and check input; the services validate again before they write."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from arena.models import Mode
from generation.fields import StrictModelChoiceField, StrictModelMultipleChoiceField
from generation.models import ModelVariant, PromptSet
from training import services
from training.models import PreferenceDataset, TrainingRun


def add_service_errors(form: forms.Form, exc: ValidationError) -> None:
    """A service's ValidationError on the form: by field where the form has that field, else on the form."""
    if hasattr(exc, "error_dict"):
        for field, errors in exc.error_dict.items():
            target = field if field in form.fields else None
            for error in errors:
                for message in error.messages:
                    form.add_error(target, message)
    else:
        for message in exc.messages:
            form.add_error(None, message)


class DatasetForm(forms.Form):
    name = forms.CharField(max_length=200, required=False, help_text="for the lists (optional)")
    modes = forms.MultipleChoiceField(choices=Mode.choices, initial=list(Mode.values), widget=forms.CheckboxSelectMultiple,
                                      help_text="which poll modes' votes go in")
    date_from = forms.DateField(required=False, help_text="first UTC day (YYYY-MM-DD), empty: from the start",
                                widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, help_text="last UTC day, inclusive; empty: up to now",
                              widget=forms.DateInput(attrs={"type": "date"}))
    models = StrictModelMultipleChoiceField(ModelVariant.objects.order_by("name"), required=False,
                                            widget=forms.CheckboxSelectMultiple,
                                            help_text="pairs of these models only (none ticked: any)")
    prompt_sets = StrictModelMultipleChoiceField(PromptSet.objects.order_by("name"), required=False,
                                                 widget=forms.CheckboxSelectMultiple,
                                                 help_text="polls on these fixed prompt sets only (none ticked: any, free prompts too)")
    exclude_flagged = forms.BooleanField(required=False, initial=True,
                                         help_text="leave out votes cast faster than MIN_VOTE_SECONDS (even when counted)")
    exclude_flagged_voters = forms.BooleanField(required=False, initial=False,
                                                help_text="leave out every vote of a voter with a flagged vote")

    def service_kwargs(self) -> dict:
        d = self.cleaned_data
        return {"modes": d["modes"], "date_from": d["date_from"], "date_to": d["date_to"],
                "models": [m.pk for m in d["models"]], "prompt_sets": [p.pk for p in d["prompt_sets"]],
                "exclude_flagged": d["exclude_flagged"], "exclude_flagged_voters": d["exclude_flagged_voters"]}


# Hyper-parameters on the form: (name, field class, help text, methods that use it). Blank = the method's default.
SETTINGS = [
    ("max_train_steps", forms.IntegerField, "optimizer steps (kohya's max_train_steps)", ("dpo", "sft")),
    ("learning_rate", forms.FloatField, "LoRA learning rate", ("dpo", "sft", "reward")),
    ("lr_scheduler", forms.ChoiceField, "the learning-rate schedule; warm-up needs a non-constant one", ("dpo", "sft")),
    ("lr_warmup_steps", forms.IntegerField, "steps of linear warm-up", ("dpo", "sft")),
    ("train_batch_size", forms.IntegerField, "pairs (DPO) or images (supervised) per process and micro-step", ("dpo", "sft")),
    ("gradient_accumulation_steps", forms.IntegerField, "micro-steps per optimizer step", ("dpo", "sft")),
    ("network_dim", forms.IntegerField, "LoRA rank", ("dpo", "sft")),
    ("network_alpha", forms.FloatField, "LoRA alpha (scale = alpha / rank)", ("dpo", "sft")),
    ("resolution", forms.IntegerField, "square training size in pixels (a multiple of 64; SDXL: 1024)", ("dpo", "sft")),
    ("mixed_precision", forms.ChoiceField, "bf16 on recent GPUs; no on a CPU", ("dpo", "sft")),
    ("checkpointing_steps", forms.IntegerField, "save a resumable checkpoint every this many steps", ("dpo", "sft")),
    ("beta_dpo", forms.FloatField, "Diffusion-DPO's β (the paper's SDXL value: 5000)", ("dpo",)),
    ("kto_weight", forms.FloatField, "weight of the both-bad (KTO-style) term; 0 = both-bad rows unused", ("dpo",)),
    ("min_snr_gamma", forms.FloatField, "min-SNR weighting γ (0 = off; 5 is usual)", ("sft",)),
    ("noise_offset", forms.FloatField, "offset noise (epsilon parents only; 0 = off)", ("sft",)),
    ("ip_noise_gamma", forms.FloatField, "input-perturbation noise (0 = off; 0.1 is usual)", ("sft",)),
    ("epochs", forms.IntegerField, "full-batch epochs of the Bradley–Terry head", ("reward",)),
    ("heldout_fraction", forms.FloatField, "share of polls held out to measure agreement", ("reward",)),
    ("open_clip_dir", forms.CharField, "the open_clip folder the head's embeddings come from", ("reward",)),
    ("sample_prompts", forms.CharField, "sample images at checkpoints: one prompt per line (at most 8); blank = the "
                                        "dataset's first caption", ("dpo", "sft")),
    ("sample_every_n_steps", forms.IntegerField, "render the samples every this many steps; 0 = at each checkpoint", ("dpo", "sft")),
    ("sample_steps", forms.IntegerField, "sampling steps of each sample image", ("dpo", "sft")),
    ("seed", forms.IntegerField, "random seed (data order, noise, held-out split)", ("dpo", "sft", "reward")),
]


class RunForm(forms.Form):
    method = forms.ChoiceField(choices=TrainingRun.Method.choices, initial="dpo")
    parent = StrictModelChoiceField(ModelVariant.objects.filter(enabled=True).order_by("name"), required=False,
                                    help_text="the model a LoRA is trained on: a base or aesthetic variant "
                                              "(a reward model has none)")
    allow_finetune_parent = forms.BooleanField(required=False, help_text="train a LoRA on a fine-tuned checkpoint anyway")
    dataset = StrictModelChoiceField(PreferenceDataset.objects.all(), help_text="built on the Datasets page")

    def __init__(self, *args, method: str = "dpo", **kwargs):
        super().__init__(*args, **kwargs)
        from training.trainers.config import LR_SCHEDULERS, MIXED_PRECISION

        method = method if method in TrainingRun.Method.values else "dpo"
        defaults = services.method_defaults(method)
        self.fields["method"].initial = method
        self.setting_names = []
        for name, cls, help_text, methods in SETTINGS:
            if method not in methods:
                continue
            opts = {"required": False, "help_text": f"{help_text} · default {defaults.get(name)}"}
            if cls is forms.ChoiceField:
                options = LR_SCHEDULERS if name == "lr_scheduler" else MIXED_PRECISION
                field = forms.ChoiceField(choices=[("", "default")] + [(o, o) for o in options], **opts)
            elif name == "sample_prompts":
                field = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=4000, **opts)
            else:
                field = cls(**opts)
            field.initial = defaults.get(name)
            field.widget.attrs["placeholder"] = str(defaults.get(name))
            self.fields[name] = field
            self.setting_names.append(name)
        self.method = method

    def config(self) -> dict:
        return {n: self.cleaned_data[n] for n in self.setting_names if self.cleaned_data.get(n) not in (None, "")}

    def service_kwargs(self) -> dict:
        d = self.cleaned_data
        return {"method": d["method"], "parent": d["parent"], "dataset": d["dataset"], "config": self.config(),
                "allow_finetune_parent": d["allow_finetune_parent"]}


class LoraEnrollForm(forms.Form):
    parent = StrictModelChoiceField(ModelVariant.objects.order_by("name"), required=False,
                                    help_text="the model the LoRA was trained on")
    name = forms.CharField(max_length=120, help_text="the new model's name")
    path = forms.CharField(max_length=1000, required=False, help_text="a .safetensors LoRA file on the server")
    upload = forms.FileField(required=False, help_text="or upload the .safetensors file")
    note = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), help_text="shown on its card")

    def service_kwargs(self) -> dict:
        d = self.cleaned_data
        return {"parent": d["parent"], "name": d["name"], "path": d["path"] or "", "upload": d["upload"],
                "note": d["note"]}
