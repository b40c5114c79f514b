"""A1111 prompt syntax beyond attention weights: LoRA tags, what we refuse, and CLIP's text normalisation.

Pure Python (``ftfy`` is imported only by ``normalize_text``, which workers call). Follows stable-diffusion-webui:

* ``<lora:name:te[:unet]>`` / ``<lyco:...>`` extra-network tags (modules/extra_networks.py ``re_extra_net``,
  extensions-builtin/Lora ``activate``): removed from the text, the LoRA applied at that weight;
* prompt editing ``[from:to:when]`` / ``[to:when]`` and alternation ``[a|b]`` (the lark grammar of
  modules/prompt_parser.py) and ``AND`` composition change the conditioning during sampling; they are refused
  with a clear message rather than encoded as literal text;
* CLIP's ``basic_clean`` (ftfy, HTML entities) and whitespace clean-up, applied to each piece before tokenising.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from .types import GenerationError

RE_EXTRA_NET = re.compile(r"<(\w+):([^>]+)>")  # A1111's re_extra_net
LORA_TYPES = ("lora", "lyco")
_RE_NUMBER = re.compile(r"\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*")
_RE_AND = re.compile(r"\bAND\b")
_RE_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class PromptLora:
    """A LoRA named in a prompt: ``te_weight`` for the text encoders, ``unet_weight`` for the UNet."""

    name: str
    te_weight: float = 1.0
    unet_weight: float = 1.0


@dataclass(frozen=True)
class LoraTags:
    text: str  # the prompt with the tags removed (exactly as A1111 removes them)
    loras: tuple[PromptLora, ...]


def _weight(value: str, tag: str) -> float:
    try:
        weight = float(value)
    except ValueError:
        raise GenerationError(f"LoRA tag {tag}: weight {value!r} is not a number") from None
    if weight != weight or abs(weight) > 100:
        raise GenerationError(f"LoRA tag {tag}: weight {value!r} is out of range")
    return weight


def _lora_from_tag(tag: str, args: str) -> PromptLora:
    items = [item.strip() for item in args.split(":")]
    positional = [item for item in items if "=" not in item]
    named = dict(item.split("=", 1) for item in items if "=" in item)
    unknown = set(named) - {"te", "unet"}
    if unknown:
        raise GenerationError(f"LoRA tag {tag}: {', '.join(sorted(unknown))}= is not supported (only te= and unet=)")
    if not positional or not positional[0]:
        raise GenerationError(f"LoRA tag {tag} has no LoRA name")
    if len(positional) > 3:
        raise GenerationError(f"LoRA tag {tag}: too many fields (name, weight, UNet weight at most)")
    te = _weight(positional[1], tag) if len(positional) > 1 else 1.0
    te = _weight(named["te"], tag) if "te" in named else te
    unet = _weight(positional[2], tag) if len(positional) > 2 else te
    unet = _weight(named["unet"], tag) if "unet" in named else unet
    return PromptLora(positional[0], te, unet)


def parse_lora_tags(text: str) -> LoraTags:
    """Pull ``<lora:name:weight>`` tags out of a prompt: (clean text, LoRAs in order). GenerationError (one line)
    for a malformed tag or another extra-network type (``<hypernet:...>``)."""
    loras: list[PromptLora] = []

    def take(match: re.Match) -> str:
        kind, args = match.group(1), match.group(2)
        if kind.lower() not in LORA_TYPES:
            raise GenerationError(f"extra network {match.group(0)} is not supported (only <lora:name:weight>)")
        loras.append(_lora_from_tag(match.group(0), args))
        return ""

    return LoraTags(RE_EXTRA_NET.sub(take, text), tuple(loras))


def _square_group_kind(segments: list[str], has_bar: bool) -> str | None:
    if has_bar:
        return "alternation"
    if len(segments) >= 2 and _RE_NUMBER.fullmatch(segments[-1]):
        return "editing"
    return None


def find_prompt_editing(text: str) -> tuple[str, str] | None:
    """(kind, snippet) of the first ``[from:to:when]`` / ``[to:when]`` ("editing") or ``[a|b]`` ("alternation"),
    read as A1111's grammar does: ``:`` and ``|`` count only at the bracket's own level, ``\\`` escapes."""
    stack: list[dict] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c in "([":
            stack.append({"kind": c, "start": i, "cut": i + 1, "segments": [], "bar": False})
        elif c == ")" and stack and stack[-1]["kind"] == "(":
            stack.pop()
        elif c == "]" and stack and stack[-1]["kind"] == "[":
            frame = stack.pop()
            segments = frame["segments"] + [text[frame["cut"]:i]]
            kind = _square_group_kind(segments, frame["bar"])
            if kind:
                return kind, text[frame["start"]:i + 1]
        elif c in ":|" and stack and stack[-1]["kind"] == "[":
            frame = stack[-1]
            if c == "|":
                frame["bar"] = True
            else:
                frame["segments"].append(text[frame["cut"]:i])
                frame["cut"] = i + 1
        i += 1
    return None


def check_prompt_syntax(text: str, *, what: str = "prompt") -> None:
    """GenerationError (one line) for A1111 syntax this pipeline does not run: unresolved extra-network tags,
    prompt editing, alternation and (in the prompt) ``AND``. Attention weights and BREAK are fine."""
    tag = RE_EXTRA_NET.search(text)
    if tag:
        if what == "prompt":
            raise GenerationError(f"the prompt still contains {tag.group(0)}: LoRA tags must be resolved to LoRAs first")
        raise GenerationError(f"the {what} contains {tag.group(0)}: LoRA tags only work in the prompt")
    found = find_prompt_editing(text)
    if found:
        kind, snippet = found
        name = "prompt editing [from:to:when]" if kind == "editing" else "alternation [a|b]"
        raise GenerationError(f"A1111 {name} is not supported (found {snippet!r} in the {what}); "
                              "write the prompt without it, or escape the brackets as \\[ \\]")
    if what == "prompt" and _RE_AND.search(text):
        raise GenerationError("A1111's AND (composable prompts) is not supported; write 'and' in lower case for the word")


def normalize_text(text: str) -> str:
    """CLIP's own text clean-up before BPE (OpenAI CLIP / open_clip ``basic_clean`` + ``whitespace_clean``):
    ftfy.fix_text (full-width ``，`` becomes ``,``, mojibake repaired), HTML entities unescaped twice, runs of
    whitespace collapsed. Lower-casing is left to the tokenizer."""
    try:
        import ftfy
    except ImportError:  # the gpu extra installs it (open_clip needs it too)
        raise GenerationError("the ftfy package is needed to normalise prompts as CLIP does; install the gpu extra") from None
    cleaned = html.unescape(html.unescape(ftfy.fix_text(text)))
    return _RE_WHITESPACE.sub(" ", cleaned).strip()
