"""A voter's free prompt: validated and given the rating token Illustrious prompts carry."""

from __future__ import annotations

import re

from django.conf import settings

from arena.errors import PromptRejected

RATING_TOKENS = ("general", "sensitive", "questionable", "explicit", "nsfw")
# A prompt may hold Danbooru emoticon tags such as ">_<", but nothing that reads as an HTML tag or entity.
_MARKUP = re.compile(r"<\s*/?\s*[a-zA-Z!?]|&[#a-zA-Z0-9]+;|javascript:", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def free_prompt_clean(text: str) -> str:
    """Validate a voter's prompt; return it stripped or raise PromptRejected with the reason."""
    if not isinstance(text, str):
        raise PromptRejected("Type a prompt.")
    text = text.strip()
    if not text:
        raise PromptRejected("Type a prompt.")
    if len(text) > settings.FREE_PROMPT_MAX_CHARS:
        raise PromptRejected(f"The prompt is too long ({len(text)} characters; at most {settings.FREE_PROMPT_MAX_CHARS}).")
    if _CONTROL.search(text):
        raise PromptRejected("The prompt contains control characters.")
    if _MARKUP.search(text):
        raise PromptRejected("The prompt contains markup; write tags or plain words.")
    lowered = text.lower()
    for word in settings.FREE_PROMPT_BLOCKLIST:
        if re.search(rf"(?<![\w]){re.escape(word.lower())}(?![\w])", lowered):
            raise PromptRejected("This prompt is not allowed here.")
    return text


def with_rating_token(text: str) -> str:
    token = settings.FREE_PROMPT_RATING_TOKEN
    if not token:
        return text
    tags = {tag.strip().lower() for tag in re.split(r"[,\n]", text)}
    if tags & set(RATING_TOKENS):
        return text
    return f"{text}, {token}"

