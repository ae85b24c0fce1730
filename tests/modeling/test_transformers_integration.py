"""What a transformers user does with any model: attention implementations, tuple outputs, beam search and several
return sequences, offloading, the cache under the installed release's name, and no deprecation warnings per call."""

import logging
import warnings

import pytest
import torch
import transformers
from transformers.modeling_outputs import CausalLMOutputWithPast

from storm_hf.modeling.modeling_storm import StormForConditionalGeneration
from storm_hf.modeling.transformers_compat import CACHE_NAME, output_cache

from test_generation import IMAGE, PAD, VIDEO, left_pad, model  # noqa: F401  (model: the same fixture)

TOKENS_PER_SLOT = 4  # a 4x4 patch grid after the 2x2 space-to-channel window


@pytest.fixture
def saved(model, tmp_path):
    model.save_pretrained(tmp_path)
    return tmp_path


def video_inputs():
    """Two samples: the first holds two different videos (8 and 4 frames) and an image, the second one video."""
    generator = torch.Generator().manual_seed(5)
    videos = [torch.randn(n, 3, 32, 32, generator=generator) for n in (8, 4, 12)]
    pixels = torch.zeros(3, 12, 3, 32, 32)
    for row, video in enumerate(videos):
        pixels[row, : len(video)] = video
    first = [1] + [VIDEO] * 2 * TOKENS_PER_SLOT + [2] + [IMAGE] * TOKENS_PER_SLOT + [VIDEO] * TOKENS_PER_SLOT + [3]
    second = [4, 5] + [VIDEO] * 3 * TOKENS_PER_SLOT + [6]
    ids, mask = left_pad([first, second])
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "pixel_values_videos": pixels,
        "video_frame_counts": torch.tensor([8, 4, 12]),
        "pixel_values": torch.randn(1, 3, 32, 32, generator=generator),
    }


def embeddings_reaching_the_llm(model, call):
    """The `inputs_embeds` of every call of the language model while `call()` runs."""
    seen = []
    hook = model.model.language_model.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["inputs_embeds"].clone()), with_kwargs=True
    )
    try:
        with torch.no_grad():
            call()
    finally:
        hook.remove()
    return seen


@pytest.mark.parametrize("implementation", ["eager", "sdpa", "flex_attention"])
def test_every_attention_implementation_loads_and_gives_the_same_logits(saved, implementation):
    inputs = video_inputs()
    eager = StormForConditionalGeneration.from_pretrained(saved, attn_implementation="eager").eval()
    chosen = StormForConditionalGeneration.from_pretrained(saved, attn_implementation=implementation).eval()
    assert chosen.model.language_model.config._attn_implementation == implementation
    with torch.no_grad():
        expected, got = eager(**inputs).logits, chosen(**inputs).logits
    mask = inputs["attention_mask"].bool()  # padded rows may differ between implementations
    torch.testing.assert_close(got[mask], expected[mask], rtol=1e-4, atol=1e-4)


def test_flash_attention_is_refused_only_for_its_missing_package(saved):
    try:
        import flash_attn  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("flash_attn is installed")
    with pytest.raises(ImportError, match="FlashAttention2") as raised:
        StormForConditionalGeneration.from_pretrained(saved, attn_implementation="flash_attention_2")
    assert "Storm" not in str(raised.value)


def test_return_dict_false_gives_the_tuple_of_the_output(model):
    inputs = video_inputs()
    with torch.no_grad():
        output = model(**inputs)
        as_tuple = model(**inputs, return_dict=False)
        base = model.model(**inputs, return_dict=False)
    assert isinstance(as_tuple, tuple) and isinstance(base, tuple)
    assert len(as_tuple) == len(output.to_tuple())
    for got, expected in zip(as_tuple, output.to_tuple()):
        if isinstance(expected, torch.Tensor):
            torch.testing.assert_close(got, expected)
    torch.testing.assert_close(base[0], model.model(**inputs).last_hidden_state)


def test_outputs_are_transformers_output_classes_with_the_cache_under_the_installed_name(model):
    with torch.no_grad():
        output = model(**video_inputs(), use_cache=True)
    assert isinstance(output, CausalLMOutputWithPast)
    assert CACHE_NAME in output.keys() and output_cache(output).get_seq_length() == output.logits.shape[1]
    assert output.video_hidden_states.shape == ((2 + 1 + 3) * TOKENS_PER_SLOT, 64)
    assert output.image_hidden_states.shape == (TOKENS_PER_SLOT, 64)


@pytest.mark.parametrize("options", [{"num_beams": 2, "num_return_sequences": 2}, {"num_beams": 3}])
def test_beam_search_repeats_each_samples_own_videos_and_images(model, options):
    """Every expanded row sees exactly what its sample saw in a plain forward."""
    inputs = video_inputs()
    [plain] = embeddings_reaching_the_llm(model, lambda: model(**inputs))
    first_step = embeddings_reaching_the_llm(
        model, lambda: model.generate(**inputs, max_new_tokens=2, do_sample=False, **options)
    )[0]
    expected = plain.repeat_interleave(options["num_beams"], dim=0)
    torch.testing.assert_close(first_step, expected, rtol=0, atol=0)


def test_several_sampled_sequences_repeat_each_samples_videos(model):
    inputs = video_inputs()
    [plain] = embeddings_reaching_the_llm(model, lambda: model(**inputs))
    torch.manual_seed(0)
    first_step = embeddings_reaching_the_llm(
        model, lambda: model.generate(**inputs, max_new_tokens=2, do_sample=True, num_return_sequences=3)
    )[0]
    torch.testing.assert_close(first_step, plain.repeat_interleave(3, dim=0), rtol=0, atol=0)


def test_expansion_refuses_placeholders_that_do_not_line_up_with_the_videos(model):
    inputs = video_inputs()
    inputs["input_ids"][1, -1] = VIDEO  # one placeholder token too many in the second sample
    with pytest.raises(ValueError, match="do not line up"):
        model.generate(**inputs, max_new_tokens=1, num_beams=2)


def test_generation_prints_no_deprecation_warning(model, caplog):
    inputs = video_inputs()
    transformers.logging.enable_propagation()
    try:
        with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
            warnings.simplefilter("always")
            with torch.no_grad():
                model.generate(**inputs, max_new_tokens=3, do_sample=False)
                model(**inputs, use_cache=True)
    finally:
        transformers.logging.disable_propagation()
    messages = [str(w.message) for w in caught] + [record.getMessage() for record in caplog.records]
    assert not [m for m in messages if "deprecat" in m.lower()], messages


@pytest.mark.parametrize("bidirectional", [True, False])
def test_offloaded_weights_give_the_same_answer(tiny_config, tmp_path, bidirectional):
    """`device_map` with disk offload and `accelerate.cpu_offload`: the Mamba mixer reads some weights without calling
    their modules, so it fires their offload hooks itself."""
    import accelerate

    torch.manual_seed(0)
    model = StormForConditionalGeneration(tiny_config(temporal_config={"bidirectional": bidirectional})).eval()
    model.generation_config.pad_token_id = PAD
    model.save_pretrained(tmp_path / "model")
    inputs = video_inputs()
    with torch.no_grad():
        expected = model(**inputs).logits
        expected_tokens = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    device_map = {"model.vision_tower": "cpu", "model.temporal_encoder": "disk", "model.language_model": "cpu", "lm_head": "cpu"}
    on_disk = StormForConditionalGeneration.from_pretrained(
        tmp_path / "model", device_map=device_map, offload_folder=tmp_path / "offload"
    ).eval()
    mixer = on_disk.model.temporal_encoder.layers[0].mixer
    assert mixer.conv1d.weight.device.type == "meta"  # really offloaded
    offloaded = StormForConditionalGeneration.from_pretrained(tmp_path / "model").eval()
    accelerate.cpu_offload(offloaded, execution_device="cpu")
    for candidate in (on_disk, offloaded):
        with torch.no_grad():
            torch.testing.assert_close(candidate(**inputs).logits, expected, rtol=0, atol=0)
            assert torch.equal(candidate.generate(**inputs, max_new_tokens=3, do_sample=False), expected_tokens)
