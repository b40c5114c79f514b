"""Forms of the generation pages and of Django admin. They parse and check input; the services validate again
before they write."""

from __future__ import annotations

import random
import re

from django import forms
from django.core.exceptions import ValidationError

from generation import sampling, selectors, services
from generation.fields import StrictModelChoiceField, StrictModelMultipleChoiceField
from generation.models import Lora, ModelVariant, PromptSet, VariantLora

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


# A1111's own hints (javascript/hints.js), as its users know them
SCHEDULE_TYPE_HELP = ("the noise schedule the sampler steps through; Automatic is the sampler's own default "
                      "(A1111 ≥ 1.6: Karras for DPM++ 2M, Exponential for DPM++ 2M SDE, Uniform for Euler a). "
                      "Empty: Automatic when you pick a sampling method here, else each model's default")
HIRES_HELP = ("use a two step process to partially create an image at smaller resolution, upscale, and then "
              "improve details in it without changing composition")
HIRES_STEPS_HELP = "number of sampling steps for upscaled picture. If 0, uses same as for original"
DENOISING_HELP = ("determines how little respect the algorithm should have for image's content. At 0, nothing will "
                  "change, and at 1 you'll get an unrelated image")
HR_SCALE_HELP = "adjusts the size of the image by multiplying the original width and height by the selected value"


def _choices(names, empty: str = "each model's default") -> list[tuple[str, str]]:
    return [("", empty)] + [(name, name) for name in names]


class JobForm(forms.Form):
    name = forms.CharField(max_length=200, required=False)
    variants = StrictModelMultipleChoiceField(
        queryset=ModelVariant.objects.none(), widget=forms.CheckboxSelectMultiple, label="Models"
    )
    prompt_set = StrictModelChoiceField(queryset=PromptSet.objects.none(), required=False, empty_label="— pasted prompts —")
    prompt_text = forms.CharField(widget=forms.Textarea(attrs={"rows": 4, "placeholder": "one prompt a line"}),
                                  required=False, label="Pasted prompts", max_length=200_000,
                                  help_text="one prompt a line; <lora:NAME:WEIGHT> applies a registered LoRA, as in A1111")
    seeds = forms.CharField(initial="1, 2", help_text="e.g. 1, 2, 3 · 10-13 · random:4", max_length=5000)
    sampler = forms.ChoiceField(required=False, label="Sampling method",
                                help_text="images meet in fixed-prompt duels only when all settings match: set them "
                                          "here to compare models whose defaults differ (e.g. eps and v-prediction CFG)")
    schedule_type = forms.ChoiceField(required=False, label="Schedule type", help_text=SCHEDULE_TYPE_HELP)
    steps = forms.IntegerField(required=False, min_value=1, max_value=sampling.MAX_STEPS, label="Sampling steps")
    cfg_scale = forms.FloatField(required=False, min_value=sampling.MIN_CFG_SCALE, max_value=sampling.MAX_CFG_SCALE,
                                 label="CFG scale")
    width = forms.IntegerField(required=False, min_value=sampling.MIN_SIDE, max_value=sampling.MAX_SIDE)
    height = forms.IntegerField(required=False, min_value=sampling.MIN_SIDE, max_value=sampling.MAX_SIDE)
    clip_skip = forms.IntegerField(required=False, min_value=1, max_value=sampling.MAX_CLIP_SKIP, label="Clip skip",
                                   help_text="as A1111 and Forge on SDXL: 1 and 2 both use the penultimate layer")
    enable_hr = forms.TypedChoiceField(required=False, label="Hires. fix", coerce=lambda v: v == "on", empty_value=None,
                                       choices=[("", "each model's default"), ("on", "on"), ("off", "off")],
                                       help_text=HIRES_HELP)
    hr_upscaler = forms.ChoiceField(required=False, label="Upscaler")
    hr_second_pass_steps = forms.IntegerField(required=False, min_value=0, max_value=sampling.MAX_STEPS,
                                              label="Hires steps", help_text=HIRES_STEPS_HELP)
    denoising_strength = forms.FloatField(required=False, min_value=0.01, max_value=1.0, label="Denoising strength",
                                          help_text=DENOISING_HELP)
    hr_scale = forms.FloatField(required=False, min_value=sampling.MIN_HR_SCALE, max_value=sampling.MAX_HR_SCALE,
                                label="Upscale by", help_text=HR_SCALE_HELP)
    negative_prompt = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), max_length=5000,
                                      help_text="leave empty to use each prompt's own")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["variants"].queryset = selectors.variants_schedulable()
        self.fields["prompt_set"].queryset = PromptSet.objects.order_by("name")
        self.fields["sampler"].choices = _choices(sampling.sampler_names())
        self.fields["schedule_type"].choices = _choices(sampling.schedule_type_names())
        self.fields["hr_upscaler"].choices = _choices(sampling.hr_upscaler_names())

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
            "schedule_type": data.get("schedule_type") or None,
            "enable_hr": data.get("enable_hr"),
            "hr_scale": data.get("hr_scale"),
            "hr_second_pass_steps": data.get("hr_second_pass_steps"),
            "denoising_strength": data.get("denoising_strength"),
            "hr_upscaler": data.get("hr_upscaler") or None,
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


def _select(names, current: str) -> forms.Select:
    """A select of A1111's names that keeps a stored value the table no longer has (an old combined name)."""
    values = list(names) + ([current] if current and current not in names else [])
    return forms.Select(choices=[(name, name) for name in values])


class ModelVariantAdminForm(forms.ModelForm):
    """Django admin's add/change form for a model. It parses; the registry service checks the variant (its
    checkpoint the way ``register_model`` does) so that its errors show here, and the admin saves through it."""

    class Meta:
        model = ModelVariant
        fields = "__all__"
        labels = {"sampler": "Sampling method", "enable_hr": "Hires. fix", "hr_scale": "Upscale by",
                  "hr_second_pass_steps": "Hires steps", "hr_upscaler": "Upscaler", "guidance_rescale": "CFG rescale"}
        help_texts = {"schedule_type": SCHEDULE_TYPE_HELP.split(". Empty")[0], "enable_hr": HIRES_HELP,
                      "hr_second_pass_steps": HIRES_STEPS_HELP, "denoising_strength": DENOISING_HELP,
                      "hr_scale": HR_SCALE_HELP, "clip_skip": "as A1111 and Forge on SDXL: 1 and 2 both use the "
                                                          "penultimate layer",
                      "guidance_rescale": "Forge's Rescale CFG (φ, 0–1; 0 = off): v-prediction models often use 0.7"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, names in (("sampler", sampling.sampler_names()), ("schedule_type", sampling.schedule_type_names()),
                            ("hr_upscaler", sampling.hr_upscaler_names())):
            if name in self.fields:
                self.fields[name].widget = _select(names, getattr(self.instance, name, "") or "")

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


class LoraAdminForm(forms.ModelForm):
    """A registered LoRA in Django admin: the LoRA service checks the name and the file (format and A1111's hash
    come from the file) so that its errors show here, and the admin saves through it."""

    class Meta:
        model = Lora
        fields = ("name", "path", "description")

    def _post_clean(self):
        super()._post_clean()
        if self.errors:
            return
        try:
            services.lora_check_row(lora=self.instance, changed=self.changed_data if self.instance.pk else None)
        except ValidationError as exc:
            add_service_errors(self, exc)
