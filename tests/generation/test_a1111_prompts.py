"""Prompts as A1111 reads them: clip skip against the text encoders' own hidden states, the empty negative prompt,
CLIP's text normalisation against open_clip's own tokenizer, LoRA tags, and the syntax that is refused."""

import numpy as np
import pytest
import torch

from generation.pipelines import (
    GenerationError,
    GenerationRequest,
    LoraSpec,
    PromptLora,
    VariantSpec,
    parse_lora_tags,
    validate_request,
    with_prompt_loras,
)
from generation.pipelines.prompt_syntax import find_prompt_editing
from generation.pipelines.prompts import parse_prompt_attention

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@pytest.fixture(scope="module")
def loaded(tiny_models):
    from generation.pipelines.loading import load_pipeline

    return load_pipeline(VariantSpec("prompts-a1111", "single_file", tiny_models.eps_file), "cpu")


def reference_hidden_states(pipe, text: str, layer: int):
    """diffusers' own SDXL encoding of a short prompt, at hidden_states[layer] of both encoders (no emphasis)."""
    parts = []
    for tokenizer, encoder in ((pipe.tokenizer, pipe.text_encoder), (pipe.tokenizer_2, pipe.text_encoder_2)):
        ids = tokenizer(text, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
        with torch.no_grad():
            out = encoder(ids, output_hidden_states=True)
        parts.append(out.hidden_states[layer])
        pooled = getattr(out, "text_embeds", None)
    return torch.cat(parts, dim=-1), pooled


@pytest.mark.parametrize("clip_skip, layer", [(1, -2), (2, -2), (3, -3)])
def test_clip_skip_1_and_2_are_the_penultimate_layer_and_3_goes_one_back(loaded, clip_skip, layer):
    ours, pooled = loaded.encoder.encode("1girl, blue hair", clip_skip=clip_skip)
    expected, expected_pooled = reference_hidden_states(loaded.pipe, "1girl, blue hair", layer)
    torch.testing.assert_close(ours, expected)
    torch.testing.assert_close(pooled, expected_pooled)  # the pooled embedding is the last layer's, always


def test_clip_skip_past_the_first_layer_is_a_clear_error(loaded):
    with pytest.raises(GenerationError, match="clip skip 4 goes past the first layer of a 3-layer text encoder"):
        loaded.encoder.encode("1girl", clip_skip=4)


def test_comfyui_clipsetlastlayer_maps_to_the_same_layers(loaded):
    import json

    from generation import images as png

    for stop, layer in ((-1, -2), (-2, -2), (-3, -3)):
        graph = {
            "3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 20, "cfg": 5, "sampler_name": "euler",
                                                       "scheduler": "normal", "positive": ["6", 0],
                                                       "negative": ["7", 0], "latent_image": ["5", 0]}},
            "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64}},
            "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "1girl", "clip": ["10", 0]}},
            "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["10", 0]}},
            "10": {"class_type": "CLIPSetLastLayer", "inputs": {"stop_at_clip_layer": stop, "clip": ["4", 1]}},
        }
        record = png.parse_comfyui_prompt(json.dumps(graph))
        ours, _ = loaded.encoder.encode("1girl", clip_skip=record.clip_skip)
        torch.testing.assert_close(ours, reference_hidden_states(loaded.pipe, "1girl", layer)[0])


def test_an_empty_negative_prompt_reaches_the_unet_as_zeros(loaded, monkeypatch):
    seen = {}
    original = type(loaded.pipe).__call__

    def spy(self, *args, **kwargs):
        seen.update(kwargs)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(loaded.pipe), "__call__", spy)
    loaded.generate_arrays([GenerationRequest("a BREAK b", negative_prompt="", steps=1, width=64, height=64)])
    assert seen["negative_prompt_embeds"].shape == seen["prompt_embeds"].shape == (1, 2 * 77, 96)
    assert not seen["negative_prompt_embeds"].any() and not seen["negative_pooled_prompt_embeds"].any()
    assert seen["negative_pooled_prompt_embeds"].shape == seen["pooled_prompt_embeds"].shape


@pytest.mark.parametrize("text", ["1girl，blue hair", "black &amp; white", "naïve café, ＦＵＬＬ width", "smile&#44; cat",
                                  "  many   spaces\tand\ttabs ", "\u201cquoted\u201d"])
def test_prompt_text_tokenises_as_clips_own_tokenizer(loaded, text):
    from open_clip.tokenizer import SimpleTokenizer

    (chunk,) = loaded.encoder.chunks(text)
    expected = SimpleTokenizer().encode(text)  # OpenAI CLIP's tokenizer: ftfy, HTML unescape, whitespace, BPE
    assert chunk.tokens[1 : 1 + len(expected)] == expected
    assert chunk.tokens[1 + len(expected)] == loaded.encoder.chunker.id_end


def test_full_width_comma_is_a_comma(loaded):
    (chunk,) = loaded.encoder.chunks("1girl，blue hair")
    assert chunk.tokens == loaded.encoder.chunks("1girl, blue hair")[0].tokens
    assert loaded.encoder.chunker.comma_token in chunk.tokens


# -- LoRA tags -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, clean, loras", [
    ("1girl, <lora:style:0.8>, smile", "1girl, , smile", [PromptLora("style", 0.8, 0.8)]),
    ("<lora:a>1girl", "1girl", [PromptLora("a", 1.0, 1.0)]),
    ("x <lora:my lora v2:0.5:1.2> <lyco:b:-1>", "x  ", [PromptLora("my lora v2", 0.5, 1.2), PromptLora("b", -1.0, -1.0)]),
    ("<lora:c:te=0.3:unet=0.7>", "", [PromptLora("c", 0.3, 0.7)]),
    ("no tags, (smile:1.2) <3", "no tags, (smile:1.2) <3", []),
])
def test_lora_tags_are_pulled_out_as_a1111_does(text, clean, loras):
    tags = parse_lora_tags(text)
    assert tags.text == clean and list(tags.loras) == loras


@pytest.mark.parametrize("text, message", [
    ("<lora:style:strong>", "weight 'strong' is not a number"),
    ("<lora::0.5>", "has no LoRA name"),
    ("<lora:a:1:1:1:1>", "too many fields"),
    ("<lora:a:dyn=4>", "dyn= is not supported"),
    ("<hypernet:h:1>", "extra network <hypernet:h:1> is not supported"),
])
def test_malformed_lora_tags_are_refused_in_one_line(text, message):
    with pytest.raises(GenerationError, match=message) as info:
        parse_lora_tags(text)
    assert "\n" not in str(info.value)


def test_a_request_with_unresolved_lora_tags_is_refused():
    with pytest.raises(GenerationError, match="still contains <lora:style:0.8>: LoRA tags must be resolved"):
        validate_request(GenerationRequest("1girl <lora:style:0.8>"))
    with pytest.raises(GenerationError, match="LoRA tags only work in the prompt"):
        validate_request(GenerationRequest("1girl", negative_prompt="<lora:bad:1>"))


def test_prompt_loras_make_their_own_variant_spec():
    base = VariantSpec("variant-1", "single_file", "/m.safetensors", loras=(LoraSpec("/own.safetensors", 1.0),))
    extra = (LoraSpec("/style.safetensors", 0.8), LoraSpec("/char.safetensors", 0.5, unet_weight=1.0))
    spec = with_prompt_loras(base, extra)
    assert spec.loras == base.loras + extra and spec.key.startswith("variant-1+loras-") and spec != base
    assert with_prompt_loras(base, extra) == spec  # one cache entry per LoRA set
    assert with_prompt_loras(base, ()) is base


def test_te_and_unet_weights_of_a_lora_go_to_their_own_modules(tiny_models, loaded):
    from generation.pipelines.loading import load_pipeline

    text_only = load_pipeline(VariantSpec("te-only", "single_file", tiny_models.eps_file,
                                          loras=(LoraSpec(tiny_models.lora_kohya, 1.0, unet_weight=0.0),)), "cpu")
    for component, changed in (("unet", False), ("text_encoder", True), ("text_encoder_2", True)):
        a, b = getattr(loaded.pipe, component).state_dict(), getattr(text_only.pipe, component).state_dict()
        assert any(not torch.equal(a[k], b[k]) for k in a) == changed, component


# -- syntax that is refused, and what keeps working ---------------------------------------------------------------


@pytest.mark.parametrize("text, kind", [
    ("a [cat:dog:0.4] b", "editing"),
    ("[cat:dog:10]", "editing"),
    ("[dog:0.25]", "editing"),
    ("[cat::0.5]", "editing"),
    ("[(red:1.2) cat:blue dog: 0.5 ]", "editing"),
    ("[cat|dog]", "alternation"),
    ("[cat|dog|]", "alternation"),
    ("x [a|(b:1.2)] y", "alternation"),
])
def test_prompt_editing_and_alternation_are_found_as_a1111s_grammar_reads_them(text, kind):
    assert find_prompt_editing(text)[0] == kind
    with pytest.raises(GenerationError, match="is not supported") as info:
        validate_request(GenerationRequest(text))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("text", ["[cat]", "(cat:1.2)", "[(cat:1.2)]", "\\[cat:dog:0.4\\]", "a | b", "[cat:dog]",
                                  "(a:b:1.2)", "cat and dog", "1girl BREAK artist"])
def test_emphasis_and_plain_text_are_not_mistaken_for_editing(text):
    assert find_prompt_editing(text) is None
    validate_request(GenerationRequest(text))


def test_and_composition_is_refused_in_the_prompt_only():
    with pytest.raises(GenerationError, match="AND \\(composable prompts\\) is not supported"):
        validate_request(GenerationRequest("a cat AND a dog"))
    validate_request(GenerationRequest("a cat", negative_prompt="lowres AND blurry"))


def test_attention_syntax_still_parses_as_a1111():
    assert parse_prompt_attention("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).")[1] == ["house", pytest.approx(1.573)]
    assert parse_prompt_attention("[less] (more:1.5)") == [["less", pytest.approx(1 / 1.1)], [" ", 1.0], ["more", 1.5]]
    assert np.isclose(parse_prompt_attention("\\(literal\\]")[0][1], 1.0)
