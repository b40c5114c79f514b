"""A1111 prompt semantics: attention weights, 75-token chunks, BREAK, negative padding, clip skip."""

import pytest

from generation.pipelines.prompts import ChunkTokenizer, parse_prompt_attention


# -- parsing (A1111's own doc examples) ------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("normal text", [["normal text", 1.0]]),
        ("an (important) word", [["an ", 1.0], ["important", 1.1], [" word", 1.0]]),
        ("(unbalanced", [["unbalanced", 1.1]]),
        ("\\(literal\\]", [["(literal]", 1.0]]),
        ("(unnecessary)(parens)", [["unnecessaryparens", 1.1]]),
        ("[less] (more:1.5)", [["less", 1 / 1.1], [" ", 1.0], ["more", 1.5]]),
        ("", [["", 1.0]]),
    ],
)
def test_attention_weights_parse_as_in_a1111(text, expected):
    got = parse_prompt_attention(text)
    assert [t for t, _ in got] == [t for t, _ in expected]
    assert [w for _, w in got] == pytest.approx([w for _, w in expected])


def test_nested_brackets_multiply_as_in_a1111():
    got = parse_prompt_attention("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).")
    assert [t for t, _ in got] == ["a ", "house", " ", "on", " a ", "hill", ", sun, ", "sky", "."]
    assert [w for _, w in got] == pytest.approx([1.0, 1.573, 1.1, 1.0, 1.1, 0.55, 1.1, 1.4641, 1.1])


def test_break_is_an_upper_case_word_of_its_own():
    assert parse_prompt_attention("1girl BREAK artist") == [["1girl", 1.0], ["BREAK", -1], ["artist", 1.0]]
    assert parse_prompt_attention("(red BREAK blue:1.2)") == [["red", 1.2], ["BREAK", -1], ["blue", 1.2]]
    assert parse_prompt_attention("breakfast, break") == [["breakfast, break", 1.0]]
    assert parse_prompt_attention("BREAKING") == [["BREAKING", 1.0]]


# -- chunking with SDXL's tokenizer (built from open_clip's BPE vocabulary) -------------------------------


@pytest.fixture(scope="module")
def chunker(tiny_models):
    from transformers import CLIPTokenizer

    return ChunkTokenizer(CLIPTokenizer.from_pretrained(tiny_models.config_dir, subfolder="tokenizer", local_files_only=True))


def words(n):
    # "cat" is one token; no commas, so nothing moves between chunks
    return " ".join(["cat"] * n)


def test_tokenizer_has_the_real_clip_vocabulary(chunker):
    tok = chunker.tokenizer
    assert len(tok) == 49408
    assert tok("a cat, masterpiece").input_ids == [49406, 320, 2368, 267, 12066, 49407]


def test_short_prompt_is_one_chunk_of_77_tokens(chunker):
    (chunk,) = chunker("1girl, smile")
    assert len(chunk.tokens) == 77 and len(chunk.multipliers) == 77
    assert chunk.tokens[0] == chunker.id_start and chunk.tokens[-1] == chunker.id_end
    assert chunk.tokens[-10:] == [chunker.id_end] * 10  # padded with EOS


@pytest.mark.parametrize("n_tokens, n_chunks", [(1, 1), (75, 1), (76, 2), (150, 2), (151, 3)])
def test_long_prompts_are_cut_into_75_token_chunks(chunker, n_tokens, n_chunks):
    chunks = chunker(words(n_tokens))
    assert len(chunks) == n_chunks
    assert all(len(c.tokens) == 77 for c in chunks)
    assert sum(t == 2368 for c in chunks for t in c.tokens) == n_tokens  # nothing truncated


def test_break_pads_the_chunk_and_starts_a_new_one(chunker):
    chunks = chunker("1girl, smile BREAK artist name")
    assert len(chunks) == 2
    ids = chunker.tokenizer("artist name", add_special_tokens=False).input_ids
    assert chunks[1].tokens[: len(ids) + 2] == [chunker.id_start] + ids + [chunker.id_end]
    assert chunks[0].tokens[-70:] == [chunker.id_end] * 70
    assert len(chunker(words(10) + " BREAK " + words(10) + " BREAK " + words(10))) == 3


def test_words_after_a_nearby_comma_move_to_the_next_chunk(chunker):
    # 70 tokens, a comma, then 10 more: the chunk would fill mid-phrase, so the phrase after the comma moves
    chunks = chunker(words(70) + ", " + " ".join(["dog"] * 10))
    dog = chunker.tokenizer("dog", add_special_tokens=False).input_ids[0]
    assert len(chunks) == 2
    assert dog not in chunks[0].tokens
    assert chunks[1].tokens[1:11] == [dog] * 10


def test_weights_become_token_multipliers(chunker):
    (chunk,) = chunker("a (cat:1.5) [dog]")
    cat = chunk.tokens.index(2368)
    assert chunk.multipliers[cat] == pytest.approx(1.5)
    assert chunk.multipliers[cat + 1] == pytest.approx(1 / 1.1)
    assert chunk.multipliers[0] == 1.0 and chunk.multipliers[-1] == 1.0


# -- embeddings with both text encoders ------------------------------------------------------------------


@pytest.fixture(scope="module")
def encoder(tiny_models):
    from generation.pipelines import VariantSpec
    from generation.pipelines.loading import load_pipeline

    return load_pipeline(VariantSpec("prompts", "single_file", tiny_models.eps_file), "cpu").encoder


def test_embeddings_are_77_per_chunk_and_both_encoders_wide(encoder):
    import torch

    width = encoder.pipe.text_encoder.config.hidden_size + encoder.pipe.text_encoder_2.config.hidden_size
    for prompt, n in [("1girl", 1), (words(76), 2), ("a BREAK b BREAK c", 3)]:
        embeds, pooled = encoder.encode(prompt)
        assert embeds.shape == (1, 77 * n, width)
        assert pooled.shape == (1, encoder.pipe.text_encoder_2.config.projection_dim)
        assert torch.isfinite(embeds).all()


def test_break_chunk_is_encoded_like_a_prompt_of_its_own(encoder):
    import torch

    both, pooled_both = encoder.encode("1girl, smile BREAK artist name")
    first, pooled_first = encoder.encode("1girl, smile")
    second, _ = encoder.encode("artist name")
    torch.testing.assert_close(both[:, :77], first)
    torch.testing.assert_close(both[:, 77:], second)
    # the pooled embedding comes from the first chunk, as in A1111
    torch.testing.assert_close(pooled_both, pooled_first)


def test_negative_prompt_is_padded_to_the_prompts_chunks(encoder):
    import torch

    embeds, pooled, neg, neg_pooled = encoder.encode_pair("a BREAK b BREAK c", "worst quality")
    assert embeds.shape == neg.shape and embeds.shape[1] == 3 * 77
    empty, _ = encoder.encode("")
    torch.testing.assert_close(neg[:, :77], encoder.encode("worst quality")[0])
    for i in (1, 2):
        torch.testing.assert_close(neg[:, 77 * i : 77 * (i + 1)], empty)
    torch.testing.assert_close(neg_pooled, encoder.encode("worst quality")[1])
    # an empty negative prompt is zeros of the prompt's length (A1111 / diffusers on SDXL), not the encoding of ""
    _, _, zeros, zero_pooled = encoder.encode_pair("a BREAK b BREAK c", "")
    assert zeros.shape == embeds.shape and not zeros.any() and zero_pooled.shape == pooled.shape and not zero_pooled.any()
    # and the other way round: a long negative pads the prompt
    embeds, _, neg, _ = encoder.encode_pair("1girl", "worst quality BREAK low quality")
    assert embeds.shape[1] == neg.shape[1] == 2 * 77


def test_attention_weights_change_the_embedding_and_weight_one_does_not(encoder):
    import torch

    plain, _ = encoder.encode("1girl, red hair")
    same, _ = encoder.encode("1girl, (red hair:1.0)")
    heavy, _ = encoder.encode("1girl, (red hair:1.5)")
    torch.testing.assert_close(plain, same)
    assert (plain - heavy).abs().max() > 1e-3
    # A1111's "Original" emphasis keeps the mean of each chunk's hidden states
    assert heavy.mean().item() == pytest.approx(plain.mean().item(), rel=1e-3, abs=1e-5)


def test_clip_skip_3_uses_an_earlier_layer_than_1_and_2(encoder):
    one, pooled_one = encoder.encode("1girl", clip_skip=1)
    two, pooled_two = encoder.encode("1girl", clip_skip=2)
    three, pooled_three = encoder.encode("1girl", clip_skip=3)
    assert (one == two).all() and (pooled_one == pooled_two).all() and (pooled_one == pooled_three).all()
    assert (one - three).abs().max() > 1e-3
