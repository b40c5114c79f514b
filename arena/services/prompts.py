"""A voter's free prompt: validated and given the rating token Illustrious prompts carry."""

from __future__ import annotations

import re
import unicodedata

from django.conf import settings
from django.core.exceptions import ValidationError

from arena.errors import PromptRejected
from generation import services as generation_services

RATING_TOKENS = ("general", "sensitive", "questionable", "explicit", "nsfw")
# A prompt may hold Danbooru emoticon tags such as ">_<", but nothing that reads as an HTML tag or entity.
_MARKUP = re.compile(r"<\s*/?\s*[a-zA-Z!?]|&[#a-zA-Z0-9]+;|javascript:", re.IGNORECASE)
#: Unicode categories a prompt may not contain: control (Cc: C0, DEL and C1 such as U+0085, U+009B), format (Cf:
#: zero-width and bidirectional marks, U+FEFF ...) and lone surrogates (Cs), which no database stores.
REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs"})
#: ... except these, which a multi-line prompt carries (a browser's CR LF becomes LF first).
ALLOWED_CONTROLS = frozenset({"\t", "\n"})


def _refused_character(text: str) -> str | None:
    for ch in text:
        if ch not in ALLOWED_CONTROLS and unicodedata.category(ch) in REFUSED_CATEGORIES:
            return ch
    return None


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def free_prompt_clean(text: str) -> str:
    """Validate a voter's prompt; return it NFC-normalised and stripped, or raise PromptRejected with the reason."""
    if not isinstance(text, str):
        raise PromptRejected("Type a prompt.")
    if len(text) > 4 * settings.FREE_PROMPT_MAX_CHARS:  # before any per-character work
        raise PromptRejected(f"The prompt is too long ({len(text)} characters; at most {settings.FREE_PROMPT_MAX_CHARS}).")
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    refused = _refused_character(text)  # before stripping: str.strip() would quietly drop a trailing U+0085
    if refused is not None:
        raise PromptRejected(f"The prompt contains an invisible control or formatting character (U+{ord(refused):04X}); "
                             "type it again without it.")
    text = text.strip()
    if not text:
        raise PromptRejected("Type a prompt.")
    if len(text) > settings.FREE_PROMPT_MAX_CHARS:
        raise PromptRejected(f"The prompt is too long ({len(text)} characters; at most {settings.FREE_PROMPT_MAX_CHARS}).")
    if _MARKUP.search(text):
        raise PromptRejected("The prompt contains markup; write tags or plain words.")
    # Compatibility-folded, so "ｆｏｒｂｉｄｄｅｎ" (full-width) meets the blocklist's "forbidden".
    folded = _fold(text)
    for word in settings.FREE_PROMPT_BLOCKLIST:
        if re.search(rf"(?<![\w]){re.escape(_fold(word))}(?![\w])", folded):
            raise PromptRejected("This prompt is not allowed here.")
    try:  # what the pipelines would refuse (prompt editing, alternation, LoRA tags) is the voter's to fix
        generation_services.prompt_loras_resolve(text=text, loras_allowed=False)
    except ValidationError as exc:
        raise PromptRejected(" ".join(exc.messages)) from None
    return text


def with_rating_token(text: str) -> str:
    token = settings.FREE_PROMPT_RATING_TOKEN
    if not token:
        return text
    tags = {tag.strip().lower() for tag in re.split(r"[,\n]", text)}
    if tags & set(RATING_TOKENS):
        return text
    return f"{text}, {token}"

