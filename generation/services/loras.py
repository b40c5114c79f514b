"""LoRAs by name, and the prompts that name them.

A1111 users apply a LoRA by writing ``<lora:NAME:WEIGHT>`` (or ``<lora:NAME:TE:UNET>``) in the prompt, where NAME
is a file A1111 knows. Here NAME is a registered ``Lora`` (``register_lora`` or admin, both through
``lora_save``, which checks the file and stores A1111's short hash). The rules:

* a fixed prompt (a job's, a prompt set's) is checked before anything is queued: an unknown name, a malformed
  tag, a weight outside -4–4, a tag in the negative prompt or A1111 syntax the pipelines refuse (prompt editing,
  alternation, AND) is a one-line error for the admin, and nothing is saved;
* a voter's free prompt may not apply LoRAs: a tag is refused (``loras_allowed=False``), whatever its name;
* the worker removes the tags from the text the encoders see (exactly as A1111 removes them) and fuses the files
  at their weights on top of the model's own LoRAs (``pipelines.with_prompt_loras``: one cached pipeline per
  LoRA set); the stored PNG keeps the prompt as written and lists the files in ``Lora hashes``.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

from django.core.exceptions import ValidationError
from django.db import transaction

from generation import pipelines
from generation.models import Lora
from generation.pipelines.prompt_syntax import PromptLora, check_prompt_syntax, parse_lora_tags
from generation.pipelines.types import GenerationError
from generation.services.registry import MAX_LORA_WEIGHT, MIN_LORA_WEIGHT, lora_check
from generation.text import one_line

# A name must survive the tag (``<lora:NAME:...>`` splits on ":" and ends at ">"; "=" starts a named argument)
# and A1111's ``Lora hashes`` (which drops ":" and "," from names).
_BAD_NAME = re.compile(r"[:<>=,\n\r\t]")
MAX_NAME = 200


# --- the registry -----------------------------------------------------------------------------------------------


def _name_errors(name: str, *, pk: int | None) -> list[str]:
    if not name:
        return ["a LoRA needs a name (the NAME of <lora:NAME:1>)"]
    if len(name) > MAX_NAME:
        return [f"a LoRA name has at most {MAX_NAME} characters"]
    if _BAD_NAME.search(name):
        return [f"LoRA name {name!r} may not contain : < > = , or line breaks (they break <lora:NAME:weight> tags)"]
    clash = Lora.objects.filter(name__iexact=name).exclude(pk=pk).first()
    if clash is not None:
        return [f"a LoRA named {clash.name!r} is registered already"]
    return []


def lora_check_row(*, lora: Lora, changed: Collection[str] | None = None) -> None:
    """Check a new or edited LoRA before it is saved and fill in what its file says (the resolved path, the
    format, A1111's short hash). ``changed``: the fields an edit changed (None: a new LoRA); the file is read
    again only when its path changed. Raises ValidationError by field; writes nothing."""
    lora.name = " ".join((lora.name or "").split())
    errors: dict[str, list[str]] = {}
    if name_errors := _name_errors(lora.name, pk=lora.pk):
        errors["name"] = name_errors
    if changed is None or "path" in changed or not lora.short_hash:
        path = (lora.path or "").strip()
        if not path:
            errors.setdefault("path", []).append("no LoRA file given")
        else:
            try:
                lora.format = lora_check(path=path)
                lora.short_hash = pipelines.lora_short_hash(Path(path).expanduser())
            except ValidationError as exc:
                errors.setdefault("path", []).extend(one_line(m, 400) for m in exc.messages)
            except GenerationError as exc:
                errors.setdefault("path", []).append(one_line(f"LoRA {path}: {exc}", 400))
            else:
                lora.path = str(Path(path).expanduser().resolve())
    if errors:
        raise ValidationError(errors)


def lora_save(*, lora: Lora, changed: Collection[str] | None = None) -> Lora:
    """Check (``lora_check_row``) and save a new or edited LoRA: the one write path of ``register_lora`` and admin."""
    lora_check_row(lora=lora, changed=changed)
    with transaction.atomic():
        lora.save()
    return lora


def lora_register(*, path: str, name: str = "", description: str = "") -> Lora:
    """Register a LoRA file (kohya or diffusers keys) under ``name`` (default: the file's stem, as A1111 names it)."""
    name = name.strip() or Path(str(path).rstrip("/\\")).expanduser().stem
    return lora_save(lora=Lora(name=name, path=path, description=description))


# --- prompts that name LoRAs ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PromptLoras:
    """A prompt with its LoRA tags resolved: ``text`` is what the encoders see, ``loras`` the registered files
    with the weights the tags gave, in the order written."""

    text: str
    loras: tuple[tuple[Lora, PromptLora], ...] = ()

    @property
    def hashes(self) -> dict[str, str]:
        """``Lora hashes`` of the PNG record: the name written in the prompt → A1111's short hash."""
        return {tag.name: lora.short_hash for lora, tag in self.loras}

    def specs(self, api=pipelines) -> list:
        """The pipelines' ``LoraSpec`` of each file (``api``: the pipelines package, or a test's stand-in)."""
        return [api.LoraSpec(path=lora.path, weight=tag.te_weight, unet_weight=tag.unet_weight)
                for lora, tag in self.loras]


def _syntax_error(text: str, what: str) -> str | None:
    try:
        check_prompt_syntax(text, what=what)
    except GenerationError as exc:
        return str(exc)
    return None


def lora_set_key(text: str) -> tuple:
    """What a prompt's tags ask for (names and weights, in order), without the database: the tasks of one model
    and settings are grouped by it so each LoRA set is loaded once. () when there are none or they are malformed."""
    try:
        return tuple((tag.name, tag.te_weight, tag.unet_weight) for tag in parse_lora_tags(text).loras)
    except GenerationError:
        return ()


def prompt_loras_resolve(*, text: str, negative_prompt: str = "", loras_allowed: bool = True) -> PromptLoras:
    """Resolve a prompt's ``<lora:...>`` tags against the registry, and check what the pipelines would refuse.
    ValidationError (one line) for a malformed tag, an unknown name, a weight outside -4–4, a tag in the
    negative prompt, any tag when ``loras_allowed`` is false (a voter's prompt), prompt editing or alternation."""
    try:
        tags = parse_lora_tags(text)
    except GenerationError as exc:
        raise ValidationError(str(exc)) from None
    if tags.loras and not loras_allowed:
        raise ValidationError(f"LoRA tags such as <lora:{tags.loras[0].name}:…> cannot be used here: "
                              "voters' prompts may not apply LoRAs")
    for error in (_syntax_error(tags.text, "prompt"), _syntax_error(negative_prompt, "negative prompt")):
        if error:
            raise ValidationError(error)
    if not tags.loras:
        return PromptLoras(text=tags.text)
    names = list(dict.fromkeys(tag.name for tag in tags.loras))
    known = {lora.name: lora for lora in Lora.objects.filter(name__in=names)}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValidationError(
            f"unknown LoRA{'s' if len(unknown) > 1 else ''} {', '.join(repr(n) for n in unknown)} in <lora:…> "
            "(register the file with manage.py register_lora, or in admin)")
    for tag in tags.loras:
        for weight in (tag.te_weight, tag.unet_weight):
            if not MIN_LORA_WEIGHT <= weight <= MAX_LORA_WEIGHT:
                raise ValidationError(f"LoRA {tag.name!r}: weight {weight:g} is outside "
                                      f"{MIN_LORA_WEIGHT:g}–{MAX_LORA_WEIGHT:g}")
    return PromptLoras(text=tags.text, loras=tuple((known[tag.name], tag) for tag in tags.loras))


def prompts_check(*, prompts: Iterable[tuple[str, str]], loras_allowed: bool = True, limit: int = 5) -> list[str]:
    """One line per (prompt, negative prompt) pair that ``prompt_loras_resolve`` refuses (at most ``limit``,
    then a count), naming the prompt; [] when all can be generated."""
    errors: list[str] = []
    bad = 0
    for number, (text, negative) in enumerate(prompts, start=1):
        try:
            prompt_loras_resolve(text=text, negative_prompt=negative, loras_allowed=loras_allowed)
        except ValidationError as exc:
            bad += 1
            if bad <= limit:
                snippet = one_line(text, 60)
                errors.append(one_line(f"prompt {number} ({snippet!r}): {' '.join(exc.messages)}", 500))
    if bad > limit:
        errors.append(f"… and {bad - limit} more prompts with the same kind of problem")
    return errors
