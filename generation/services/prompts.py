"""Prompt sets (from text or CSV files), pasted prompts, characters and their reference images."""

from __future__ import annotations

import csv
import io
import unicodedata
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import transaction
from PIL import Image as PILImage

from generation import images as png
from generation.models import Character, CharacterReference, Prompt, PromptSet
from generation.text import one_line

MAX_PROMPTS_PER_IMPORT = 5_000
MAX_PROMPT_CHARS = 5_000


@dataclass
class PromptRow:
    text: str
    negative_prompt: str = ""
    character: str = ""


def _decode(data: bytes | str) -> str:
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationError("the file is not UTF-8 text") from None


def _looks_like_csv(text: str, filename: str) -> bool:
    if filename.lower().endswith(".csv"):
        return True
    first = text.lstrip().split("\n", 1)[0].strip().lower()
    return first.split(",")[0].strip().strip('"') in {"prompt", "text"}


def _csv_rows(text: str) -> list[PromptRow]:
    reader = csv.DictReader(io.StringIO(text))
    columns = {c.strip().lower(): c for c in (reader.fieldnames or [])}
    prompt_column = columns.get("prompt") or columns.get("text")
    if not prompt_column:
        raise ValidationError("the CSV file needs a 'prompt' column")
    negative_column = columns.get("negative_prompt") or columns.get("negative")
    character_column = columns.get("character")
    rows = []
    try:
        for record in reader:
            prompt = (record.get(prompt_column) or "").strip()
            if not prompt:
                continue
            rows.append(PromptRow(
                text=prompt,
                negative_prompt=(record.get(negative_column) or "").strip() if negative_column else "",
                character=(record.get(character_column) or "").strip() if character_column else "",
            ))
    except csv.Error as exc:
        raise ValidationError(f"the CSV file is malformed: {exc}") from None
    return rows


def prompt_rows_parse(*, data: bytes | str, filename: str = "") -> list[PromptRow]:
    """Prompts from a text file (one a line; blank lines and # comments skipped) or a CSV file with a
    ``prompt`` (or ``text``) column and optional ``negative_prompt`` and ``character`` columns."""
    text = _decode(data)
    if _looks_like_csv(text, filename):
        rows = _csv_rows(text)
    else:
        rows = [PromptRow(text=line) for line in (raw.strip() for raw in text.splitlines())
                if line and not line.startswith("#")]
    if not rows:
        raise ValidationError("no prompts found")
    if len(rows) > MAX_PROMPTS_PER_IMPORT:
        raise ValidationError(f"{len(rows)} prompts; at most {MAX_PROMPTS_PER_IMPORT} at a time")
    for number, row in enumerate(rows, 1):
        if len(row.text) > MAX_PROMPT_CHARS:
            raise ValidationError(f"prompt {number} is longer than {MAX_PROMPT_CHARS} characters")
        for value in (row.text, row.negative_prompt, row.character):
            bad = next((ch for ch in value if ch != "\t" and unicodedata.category(ch) in ("Cc", "Cf", "Cs")), None)
            if bad is not None:  # NUL cannot be stored in PostgreSQL; the others are invisible or reorder text
                raise ValidationError(f"prompt {number} contains an invisible control or formatting character "
                                      f"(U+{ord(bad):04X})")
    return rows


def prompt_set_import(
    *, name: str, data: bytes | str, filename: str = "", description: str = "", negative_prompt: str = ""
) -> PromptSet:
    """Create a prompt set from a text or CSV file, or add the file's new prompts to the set of that name
    (prompts already in the set are skipped, so importing twice changes nothing)."""
    name = (name or "").strip()
    if not name:
        raise ValidationError("a prompt set needs a name")
    rows = prompt_rows_parse(data=data, filename=filename)
    with transaction.atomic():
        prompt_set, created = PromptSet.objects.get_or_create(name=name, defaults={"description": description})
        existing = set(prompt_set.prompts.values_list("text", "negative_prompt"))
        characters: dict[str, Character] = {}
        new = []
        for row in rows:
            negative = row.negative_prompt or negative_prompt
            if (row.text, negative) in existing:
                continue
            existing.add((row.text, negative))
            character = None
            if row.character:
                if row.character not in characters:
                    characters[row.character], _ = Character.objects.get_or_create(name=row.character[:200])
                character = characters[row.character]
            new.append(Prompt(prompt_set=prompt_set, text=row.text, negative_prompt=negative,
                              character=character, source=Prompt.Source.FIXED))
        Prompt.objects.bulk_create(new)
    return prompt_set


def prompts_from_text(*, text: str, negative_prompt: str = "") -> list[Prompt]:
    """Pasted prompts (one a line) as fixed prompts outside any set; an identical pasted prompt is reused so
    images of it from several jobs can meet in duels."""
    rows = prompt_rows_parse(data=text)
    prompts = []
    for row in rows:
        prompt = Prompt.objects.filter(prompt_set=None, source=Prompt.Source.FIXED, text=row.text,
                                       negative_prompt=negative_prompt).first()
        if prompt is None:
            prompt = Prompt.objects.create(text=row.text, negative_prompt=negative_prompt, source=Prompt.Source.FIXED)
        prompts.append(prompt)
    return prompts


def character_save(*, name: str, tags: str = "", reference: bytes | None = None) -> Character:
    """Create a character (or update its tags) and optionally add a reference image, all or nothing."""
    name = (name or "").strip()
    if not name:
        raise ValidationError("a character needs a name")
    with transaction.atomic():
        character, created = Character.objects.get_or_create(name=name[:200], defaults={"tags": tags.strip()})
        if not created and tags.strip() and tags.strip() != character.tags:
            character.tags = tags.strip()
            character.save(update_fields=["tags"])
        if reference is not None:
            character_reference_add(character=character, data=reference)
    return character


def character_reference_add(*, character: Character, data: bytes) -> CharacterReference:
    """Add a reference image (any format Pillow reads; stored as a metadata-free PNG under an opaque name)."""
    try:
        picture = PILImage.open(io.BytesIO(data))
        picture.load()
    except Exception as exc:
        raise ValidationError(f"not a readable image: {one_line(exc, 200)}") from None
    reference = CharacterReference(character=character)
    reference.image.save("reference.png", ContentFile(png.png_without_metadata(picture)), save=False)
    reference.save()
    return reference
