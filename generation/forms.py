"""Forms of the generation pages and of Django admin. They parse and check input; the services validate again
before they write."""

from __future__ import annotations

import random
import re

from django import forms
from django.core.exceptions import ValidationError

from generation import sampling, selectors, services
from generation.models import ModelVariant, PromptSet, VariantLora

MAX_SEEDS = 1000


def parse_seeds(text: str) -> list[int]:
    """``"1, 2, 5-8"`` or ``"random:4"`` → seeds (ordered, duplicates removed)."""
    text = (text or "").strip()
    if not text:
        raise ValidationError("give at least one seed")
    match = re.fullmatch(r"random\s*[:x ]\s*([0-9]{1,6})", text, flags=re.IGNORECASE)
    if match:
        count = int(match.group(1))
        if not 1 <= count <= MAX_SEEDS:
            raise ValidationError(f"random:N needs 1 ≤ N ≤ {MAX_SEEDS}")
        rng = random.SystemRandom()
        return [rng.randrange(0, sampling.MAX_SEED + 1) for _ in range(count)]
    seeds: list[int] = []
    for part in re.split(r"[,\s]+", text):
        if not part:
            continue
        range_match = re.fullmatch(r"([0-9]{1,20})\s*-\s*([0-9]{1,20})", part)
        if range_match:
            low, high = int(range_match.group(1)), int(range_match.group(2))
            if high < low:
                raise ValidationError(f"the range {part} runs backwards")
            if high - low + 1 > MAX_SEEDS:
                raise ValidationError(f"the range {part} has more than {MAX_SEEDS} seeds")
            seeds.extend(range(low, high + 1))
        elif re.fullmatch(r"[0-9]{1,20}", part):  # ASCII digits: isdigit() is true for "²", and int() of
            seeds.append(int(part))  # thousands of digits raises
        else:
            raise ValidationError(f"{part!r} is not a seed (use whole numbers, ranges like 1-4, or random:4)")
    seeds = list(dict.fromkeys(seeds))
    if len(seeds) > MAX_SEEDS:
        raise ValidationError(f"at most {MAX_SEEDS} seeds")
    if any(s > sampling.MAX_SEED for s in seeds):
        raise ValidationError(f"seeds must be at most {sampling.MAX_SEED}")
    return seeds


_PK = re.compile(r"[0-9]{1,18}")


class StrictModelChoiceField(forms.ModelChoiceField):
    """A primary key must be ASCII digits before it is looked up (SQLite cannot even bind a 20-digit integer)."""

    def to_python(self, value):
        if value not in self.empty_values and not _PK.fullmatch(str(value)):
            raise ValidationError(self.error_messages["invalid_choice"], code="invalid_choice")
        return super().to_python(value)


class StrictModelMultipleChoiceField(forms.ModelMultipleChoiceField):
    def clean(self, value):
        for pk in value if isinstance(value, (list, tuple)) else ():
            if not _PK.fullmatch(str(pk)):
                raise ValidationError(self.error_messages["invalid_pk_value"], code="invalid_pk_value", params={"pk": pk})
        return super().clean(value)


class JobForm(forms.Form):
    name = forms.CharField(max_length=200, required=False)
    variants = StrictModelMultipleChoiceField(
        queryset=ModelVariant.objects.none(), widget=forms.CheckboxSelectMultiple, label="Models"
    )
    prompt_set = StrictModelChoiceField(queryset=PromptSet.objects.none(), required=False, empty_label="— pasted prompts —")
    prompt_text = forms.CharField(widget=forms.Textarea(attrs={"rows": 4, "placeholder": "one prompt a line"}),
                                  required=False, label="Pasted prompts", max_length=200_000)
    seeds = forms.CharField(initial="1, 2", help_text="e.g. 1, 2, 3 · 10-13 · random:4", max_length=5000)
    sampler = forms.ChoiceField(required=False, label="Sampler",
                                help_text="images meet in fixed-prompt duels only when all settings match: set them "
                                          "here to compare models whose defaults differ (e.g. eps and v-prediction CFG)")
    steps = forms.IntegerField(required=False, min_value=1, max_value=sampling.MAX_STEPS)
    cfg_scale = forms.FloatField(required=False, min_value=sampling.MIN_CFG_SCALE, max_value=sampling.MAX_CFG_SCALE,
                                 label="CFG scale")
    width = forms.IntegerField(required=False, min_value=sampling.MIN_SIDE, max_value=sampling.MAX_SIDE)
    height = forms.IntegerField(required=False, min_value=sampling.MIN_SIDE, max_value=sampling.MAX_SIDE)
    clip_skip = forms.IntegerField(required=False, min_value=1, max_value=sampling.MAX_CLIP_SKIP)
    negative_prompt = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), max_length=5000,
                                      help_text="leave empty to use each prompt's own")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["variants"].queryset = selectors.variants_schedulable()
        self.fields["prompt_set"].queryset = PromptSet.objects.order_by("name")
        self.fields["sampler"].choices = [("", "each model's default")] + [(s, s) for s in sampling.sampler_names()]

    def clean_seeds(self) -> list[int]:
        return parse_seeds(self.cleaned_data.get("seeds", ""))

    def clean(self):
        data = super().clean()
        if bool(data.get("prompt_set")) == bool((data.get("prompt_text") or "").strip()):
            raise ValidationError("Pick a prompt set or paste prompts (one of them).")
        width, height = data.get("width"), data.get("height")
        if width and height:
            for message in sampling.size_errors(width=width, height=height):
                self.add_error("width", message)
        return data

    def service_kwargs(self) -> dict:
        data = self.cleaned_data
        return {
            "name": data.get("name") or "",
            "variants": list(data["variants"]),
            "prompt_set": data.get("prompt_set"),
            "prompt_text": data.get("prompt_text") or "",
            "seeds": data["seeds"],
            "sampler": data.get("sampler") or None,
            "steps": data.get("steps"),
            "cfg_scale": data.get("cfg_scale"),
            "width": data.get("width"),
            "height": data.get("height"),
            "clip_skip": data.get("clip_skip"),
            "negative_prompt": data.get("negative_prompt") or None,
        }


def add_service_errors(form: forms.Form, error: ValidationError) -> None:
    """Put a service's ValidationError on the form (field errors where the field exists)."""
    if hasattr(error, "error_dict"):
        for field, errors in error.error_dict.items():
            for item in errors:
                form.add_error(field if field in form.fields else None, item.messages[0] if hasattr(item, "messages") else str(item))
    else:
        for message in error.messages:
            form.add_error(None, message)


class PromptSetImportForm(forms.Form):
    name = forms.CharField(max_length=200)
    file = forms.FileField(help_text="text (one prompt a line) or CSV with a 'prompt' column "
                                     "(optional 'negative_prompt', 'character')")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    negative_prompt = forms.CharField(required=False, max_length=5000, help_text="for prompts that give none")

    MAX_BYTES = 5 * 1024 * 1024

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > self.MAX_BYTES:
            raise ValidationError("the file is larger than 5 MB")
        return upload


class CharacterReferenceForm(forms.Form):
    name = forms.CharField(max_length=200, label="Character", help_text="an existing character gets another reference")
    tags = forms.CharField(max_length=500, required=False, help_text="the Danbooru tag(s) naming the character")
    image = forms.ImageField(required=False, label="Reference image")

    def clean_name(self):
        return self.cleaned_data["name"].strip()


class ModelVariantAdminForm(forms.ModelForm):
    """Django admin's add/change form for a model. It parses; the registry service checks the variant (its
    checkpoint the way ``register_model`` does) so that its errors show here, and the admin saves through it."""

    class Meta:
        model = ModelVariant
        fields = "__all__"

    def _post_clean(self):
        super()._post_clean()  # self.instance now holds the submitted values
        if self.errors:
            return
        try:
            services.variant_check(variant=self.instance, changed=self.changed_data if self.instance.pk else None)
        except ValidationError as exc:
            add_service_errors(self, exc)


class VariantLoraAdminForm(forms.ModelForm):
    """A LoRA row in Django admin: the registry service checks the file (its format comes from the keys)."""

    class Meta:
        model = VariantLora
        fields = "__all__"

    def clean(self):
        data = super().clean()
        path = (data.get("path") or "").strip()
        if path and not data.get("DELETE"):
            try:
                services.lora_check(path=path)
            except ValidationError as exc:
                self.add_error("path", exc.messages[0])
        return data
