"""A1111-compatible prompt handling for SDXL: attention weights, 75-token chunks, BREAK.

Follows stable-diffusion-webui (modules/prompt_parser.py ``parse_prompt_attention`` and
modules/sd_hijack_clip.py ``tokenize_line`` / ``process_tokens``, "Original" emphasis):

* ``(word)`` x1.1, ``[word]`` /1.1, ``(word:1.3)`` explicit, nesting multiplies, ``\\(`` is a literal bracket;
* the prompt is cut into chunks of 75 tokens, each encoded as BOS + 75 + EOS = 77 tokens by both CLIP text
  encoders; when a chunk fills up and a comma is at most 20 tokens back, the words after it move to the next
  chunk; ``BREAK`` (upper case, a word of its own) pads the current chunk and starts a new one;
* each chunk's hidden states are multiplied by the token weights and rescaled to keep their mean; chunks are
  concatenated along the sequence (77 x number of chunks), the two encoders along the features;
* the pooled embedding is the second encoder's, from the first chunk;
* the shorter of prompt / negative prompt is padded with empty chunks to the same number of chunks, and the
  UNet's cross-attention masks the padding out (runner.cross_attention_mask): the same as A1111's default of
  running prompt and negative at their own lengths (``pad_cond_uncond`` off);
* an empty negative prompt is zero embeddings and a zero pooled embedding (A1111's ``force_zero_embeddings``
  for SDXL, diffusers' ``force_zeros_for_empty_prompt``);
* each parsed piece is normalised as CLIP's own tokenizer does (ftfy, HTML entities) before BPE.

No maintained library implements these semantics (compel uses its own ``word++`` / ``(word)1.2`` syntax and
neither BREAK nor A1111's chunking), hence this small module.

Clip skip on SDXL as A1111, Forge and ComfyUI read it: both encoders always use the penultimate layer for 1 and
2 (A1111 ignores the setting on SDXL; Forge and ComfyUI's CLIPSetLastLayer(-2) mean the penultimate layer), and
n >= 3 takes ``hidden_states[-n]``, one layer further back per step. The pooled embedding is always the last
layer's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .prompt_syntax import normalize_text
from .types import GenerationError

CHUNK_LENGTH = 75
COMMA_PADDING_BACKTRACK = 20

_RE_ATTENTION = re.compile(
    r"""
\\\(|
\\\)|
\\\[|
\\]|
\\\\|
\\|
\(|
\[|
:\s*([+-]?[.\d]+)\s*\)|
\)|
]|
[^\\()\[\]:]+|
:
""",
    re.X,
)
_RE_BREAK = re.compile(r"\s*\bBREAK\b\s*", re.S)
ROUND_MULTIPLIER = 1.1
SQUARE_MULTIPLIER = 1 / 1.1


def parse_prompt_attention(text: str) -> list[list]:
    """``[[text, weight], ...]`` with ``["BREAK", -1]`` separators, exactly as A1111 parses a prompt.

    >>> parse_prompt_attention('an (important) word')
    [['an ', 1.0], ['important', 1.1], [' word', 1.0]]
    """
    res: list[list] = []
    round_brackets: list[int] = []
    square_brackets: list[int] = []

    def multiply_range(start: int, multiplier: float) -> None:
        for p in range(start, len(res)):
            if res[p] != ["BREAK", -1]:  # A1111 multiplies BREAK inside brackets too, which loses it; we don't
                res[p][1] *= multiplier

    for m in _RE_ATTENTION.finditer(text):
        piece = m.group(0)
        weight = m.group(1)
        if piece.startswith("\\"):
            res.append([piece[1:], 1.0])
        elif piece == "(":
            round_brackets.append(len(res))
        elif piece == "[":
            square_brackets.append(len(res))
        elif weight is not None and round_brackets:
            try:
                multiply_range(round_brackets.pop(), float(weight))
            except ValueError:  # "(x:.)": A1111 would crash; keep the text as written
                res.append([piece, 1.0])
        elif piece == ")" and round_brackets:
            multiply_range(round_brackets.pop(), ROUND_MULTIPLIER)
        elif piece == "]" and square_brackets:
            multiply_range(square_brackets.pop(), SQUARE_MULTIPLIER)
        else:
            for i, part in enumerate(_RE_BREAK.split(piece)):
                if i > 0:
                    res.append(["BREAK", -1])
                res.append([part, 1.0])

    for pos in round_brackets:
        multiply_range(pos, ROUND_MULTIPLIER)
    for pos in square_brackets:
        multiply_range(pos, SQUARE_MULTIPLIER)

    if not res:
        res = [["", 1.0]]

    # merge runs of identical weights
    i = 0
    while i + 1 < len(res):
        if res[i][1] == res[i + 1][1]:
            res[i][0] += res[i + 1][0]
            res.pop(i + 1)
        else:
            i += 1
    return res


@dataclass
class PromptChunk:
    tokens: list[int]  # 77 ids: BOS, 75 tokens (padded with EOS), EOS
    multipliers: list[float]  # 77 weights


class ChunkTokenizer:
    """Cuts prompts into A1111 chunks with one CLIP tokenizer (SDXL's two tokenizers share the vocabulary)."""

    def __init__(self, tokenizer, *, chunk_length: int = CHUNK_LENGTH, comma_backtrack: int = COMMA_PADDING_BACKTRACK):
        self.tokenizer = tokenizer
        self.chunk_length = chunk_length
        self.comma_backtrack = comma_backtrack
        self.id_start = tokenizer.bos_token_id
        self.id_end = tokenizer.eos_token_id
        self.comma_token = tokenizer.get_vocab().get(",</w>")

    def empty_chunk(self) -> PromptChunk:
        n = self.chunk_length + 2
        return PromptChunk([self.id_start] + [self.id_end] * (n - 1), [1.0] * n)

    def __call__(self, text: str) -> list[PromptChunk]:
        parsed = parse_prompt_attention(text)
        texts = [piece if weight == -1 else normalize_text(piece) for piece, weight in parsed]
        tokenized = self.tokenizer(texts, truncation=False, add_special_tokens=False)["input_ids"]

        chunks: list[PromptChunk] = []
        tokens: list[int] = []
        mults: list[float] = []
        last_comma = -1

        def next_chunk() -> None:
            nonlocal tokens, mults, last_comma
            pad = self.chunk_length - len(tokens)
            chunks.append(
                PromptChunk(
                    [self.id_start] + tokens + [self.id_end] * pad + [self.id_end],
                    [1.0] + mults + [1.0] * pad + [1.0],
                )
            )
            tokens, mults, last_comma = [], [], -1

        for ids, (piece, weight) in zip(tokenized, parsed):
            if piece == "BREAK" and weight == -1:
                next_chunk()
                continue
            for token in ids:
                if token == self.comma_token:
                    last_comma = len(tokens)
                elif (
                    self.comma_backtrack
                    and len(tokens) == self.chunk_length
                    and last_comma != -1
                    and len(tokens) - last_comma <= self.comma_backtrack
                ):
                    cut = last_comma + 1
                    moved_tokens, moved_mults = tokens[cut:], mults[cut:]
                    tokens, mults = tokens[:cut], mults[:cut]
                    next_chunk()
                    tokens, mults = moved_tokens, moved_mults
                if len(tokens) == self.chunk_length:
                    next_chunk()
                tokens.append(token)
                mults.append(float(weight))
        if tokens or not chunks:
            next_chunk()
        return chunks


def hidden_layer_index(clip_skip: int, num_layers: int) -> int:
    """The index into ``output_hidden_states`` for A1111's clip skip on SDXL: -2 (penultimate) for 1 and 2, -n for
    n >= 3. GenerationError when that is before the encoder's first layer."""
    if not isinstance(clip_skip, int) or clip_skip < 1:
        raise GenerationError(f"clip skip must be a whole number of at least 1, got {clip_skip!r}")
    if clip_skip > num_layers:
        raise GenerationError(f"clip skip {clip_skip} goes past the first layer of a {num_layers}-layer text encoder")
    return -max(2, clip_skip)


def _encode_chunks(text_encoder, chunks: list[PromptChunk], *, pad_id: int | None, eos_id: int, clip_skip: int):
    """(hidden states [1, 77*n, D] with emphasis applied, pooled text_embeds of chunk 0 or None)."""
    import torch

    layer = hidden_layer_index(clip_skip, int(text_encoder.config.num_hidden_layers))
    ids = torch.tensor([c.tokens for c in chunks], dtype=torch.long)
    if pad_id is not None and pad_id != eos_id:
        # SD2/SDXL-G style padding: everything after the first EOS is the pad token ("!", id 0)
        for row in ids:
            first_eos = int((row == eos_id).nonzero()[0])
            row[first_eos + 1 :] = pad_id
    device = text_encoder.device
    out = text_encoder(ids.to(device), output_hidden_states=True)
    z = out.hidden_states[layer]
    mult = torch.tensor([c.multipliers for c in chunks], dtype=z.dtype, device=z.device)
    original_mean = z.mean(dim=(1, 2), keepdim=True)
    z = z * mult.unsqueeze(-1)
    new_mean = z.mean(dim=(1, 2), keepdim=True)
    z = z * (original_mean / new_mean)
    pooled = None
    if getattr(out, "text_embeds", None) is not None:
        pooled = out.text_embeds[:1]
    return z.reshape(1, -1, z.shape[-1]), pooled


class PromptEncoder:
    """Encodes prompts for one SDXL pipeline the A1111 way. ``encode_pair`` is what generation uses."""

    def __init__(self, pipe):
        self.pipe = pipe
        self.chunker = ChunkTokenizer(pipe.tokenizer)
        tok2 = getattr(pipe, "tokenizer_2", None) or pipe.tokenizer
        self.pad_id_2 = tok2.pad_token_id
        self.eos_id = self.chunker.id_end

    def chunks(self, text: str) -> list[PromptChunk]:
        return self.chunker(text)

    def encode_chunks(self, chunks: list[PromptChunk], *, clip_skip: int = 1):
        import torch

        with torch.inference_mode():
            z1, _ = _encode_chunks(self.pipe.text_encoder, chunks, pad_id=None, eos_id=self.eos_id, clip_skip=clip_skip)
            z2, pooled = _encode_chunks(
                self.pipe.text_encoder_2, chunks, pad_id=self.pad_id_2, eos_id=self.eos_id, clip_skip=clip_skip
            )
            return torch.cat([z1, z2.to(z1.dtype)], dim=-1), pooled

    def encode(self, text: str, *, clip_skip: int = 1, min_chunks: int = 1):
        """(prompt_embeds [1, 77*n, D1+D2], pooled [1, P]) with at least ``min_chunks`` chunks."""
        chunks = self.chunks(text)
        chunks += [self.chunker.empty_chunk() for _ in range(min_chunks - len(chunks))]
        return self.encode_chunks(chunks, clip_skip=clip_skip)

    def encode_pair(self, prompt: str, negative: str, *, clip_skip: int = 1):
        """(embeds, pooled, negative embeds, negative pooled), both padded to the same number of chunks.

        An empty negative prompt is all zeros, embeddings and pooled embedding (A1111 / diffusers on SDXL)."""
        import torch

        pos = self.chunks(prompt)
        neg = self.chunks(negative) if negative != "" else []
        n = max(len(pos), len(neg))
        pos += [self.chunker.empty_chunk() for _ in range(n - len(pos))]
        embeds, pooled = self.encode_chunks(pos, clip_skip=clip_skip)
        if negative == "":
            return embeds, pooled, torch.zeros_like(embeds), torch.zeros_like(pooled)
        neg += [self.chunker.empty_chunk() for _ in range(n - len(neg))]
        neg_embeds, neg_pooled = self.encode_chunks(neg, clip_skip=clip_skip)
        return embeds, pooled, neg_embeds, neg_pooled

    def chunk_counts(self, prompt: str, negative: str = "") -> tuple[int, int]:
        """(chunks of the prompt, chunks of the negative prompt; 0 for an empty one, which is zeros)."""
        return len(self.chunks(prompt)), len(self.chunks(negative)) if negative != "" else 0

    def count_chunks(self, prompt: str, negative: str = "") -> int:
        return max(self.chunk_counts(prompt, negative))
