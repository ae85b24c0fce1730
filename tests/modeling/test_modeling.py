import pytest
import torch

from storm_hf.modeling.modeling_storm import StormForConditionalGeneration, StormModel

VIDEO, IMAGE = 100, 101
TOKENS_PER_SLOT = 4  # 32 px / patch 8 = 4x4 patches -> 2x2 after the 2x2 space-to-channel window


@pytest.fixture
def model(tiny_config):
    torch.manual_seed(0)
    return StormForConditionalGeneration(tiny_config()).eval()


def video_prompt(num_tokens, prefix=(1, 2, 3), suffix=(4, 5)):
    return list(prefix) + [VIDEO] * num_tokens + list(suffix)


def test_video_features_have_one_tensor_per_video_of_the_expected_length(model):
    pixels = torch.randn(3, 12, 3, 32, 32)
    counts = torch.tensor([12, 8, 4])
    features = model.get_video_features(pixels, counts).pooler_output
    assert [tuple(f.shape) for f in features] == [(3 * 4, 64), (2 * 4, 64), (1 * 4, 64)]
    strided = model.get_video_features(pixels, counts, temporal_sampling_stride=2).pooler_output
    assert [f.shape[0] for f in strided] == [2 * 4, 1 * 4, 1 * 4]


def test_mixed_length_batch_equals_one_video_at_a_time(model):
    torch.manual_seed(1)
    long, short = torch.randn(8, 3, 32, 32), torch.randn(4, 3, 32, 32)
    padded = torch.zeros(2, 8, 3, 32, 32)
    padded[0], padded[1, :4] = long, short
    with torch.no_grad():
        batched = model.get_video_features(padded, torch.tensor([8, 4])).pooler_output
        alone = [model.get_video_features(v[None]).pooler_output[0] for v in (long, short)]
    for got, expected in zip(batched, alone):
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_padded_frames_are_never_encoded(model):
    pixels = torch.randn(2, 8, 3, 32, 32)
    pixels[1, 4:] = float("nan")  # anything read from the padding would poison the output
    with torch.no_grad():
        features = model.get_video_features(pixels, torch.tensor([8, 4])).pooler_output
    assert all(torch.isfinite(f).all() for f in features)


def test_no_scan_crosses_from_one_video_into_another(model):
    a, b, b_changed = torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        first = model.get_video_features(torch.stack([a, b])).pooler_output[0]
        first_again = model.get_video_features(torch.stack([a, b_changed])).pooler_output[0]
    assert torch.equal(first, first_again)


def test_chunked_vision_encoding_equals_unchunked(tiny_config):
    torch.manual_seed(0)
    whole = StormModel(tiny_config(vision_chunk_size=64)).eval()
    chunked = StormModel(tiny_config(vision_chunk_size=3)).eval()
    chunked.load_state_dict(whole.state_dict())
    pixels = torch.randn(2, 8, 3, 32, 32)
    with torch.no_grad():
        for a, b in zip(whole.get_video_features(pixels).pooler_output, chunked.get_video_features(pixels).pooler_output):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("layer", [-2, -1, 1])
def test_frame_features_are_the_vision_towers_selected_hidden_state(tiny_config, layer):
    torch.manual_seed(0)
    model = StormModel(tiny_config(vision_feature_layer=layer)).eval()
    frames = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        expected = model.vision_tower(frames, output_hidden_states=True).hidden_states[layer]
        features = model._encode_frames(frames)
    torch.testing.assert_close(features, expected.view(3, 4, 4, 32))


def test_video_tokens_are_filled_with_the_video_features(model):
    pixels = torch.randn(1, 8, 3, 32, 32)
    ids = torch.tensor([video_prompt(2 * TOKENS_PER_SLOT)])
    with torch.no_grad():
        out = model.model(input_ids=ids, pixel_values_videos=pixels)
        features = model.get_video_features(pixels).pooler_output[0]
    assert torch.equal(out.video_hidden_states, features)
    # the language model saw the features at the placeholder positions
    embeds = model.get_input_embeddings()(ids)
    embeds[ids == VIDEO] = features
    with torch.no_grad():
        expected = model.model.language_model(inputs_embeds=embeds).last_hidden_state
    torch.testing.assert_close(out.last_hidden_state, expected)


def test_placeholder_count_mismatch_names_both_numbers_and_the_settings(model):
    pixels = torch.randn(1, 8, 3, 32, 32)
    ids = torch.tensor([video_prompt(8)])
    with pytest.raises(ValueError) as error:
        model(input_ids=ids, pixel_values_videos=pixels, temporal_sampling_stride=2)
    message = str(error.value)
    assert "8 video placeholder tokens" in message and "features have 4 tokens" in message
    assert "frame counts [8]" in message and "temporal_sampling_stride=2" in message and "temporal_pool_size=4" in message


def test_videos_that_are_not_a_multiple_of_k_are_refused(model):
    with pytest.raises(ValueError, match=r"multiple of temporal_pool_size=4 frames; got frame counts \[8, 6\]"):
        model.get_video_features(torch.randn(2, 8, 3, 32, 32), torch.tensor([8, 6]))


def test_bad_pixel_shapes_are_refused(model):
    with pytest.raises(ValueError, match=r"pixel_values_videos must be \(num_videos, frames"):
        model.get_video_features(torch.randn(8, 3, 32, 32))
    with pytest.raises(ValueError, match=r"video_frame_counts \[9\] does not fit"):
        model.get_video_features(torch.randn(1, 8, 3, 32, 32), torch.tensor([9]))
    with pytest.raises(ValueError, match=r"Frames must be 3x32x32 \(the vision tower's image_size\), got \(3, 48, 48\)"):
        model.get_video_features(torch.randn(1, 4, 3, 48, 48))


def test_images_use_the_same_path_with_one_frame(model):
    pixels = torch.randn(2, 3, 32, 32)
    features = model.get_image_features(pixels).pooler_output
    assert [tuple(f.shape) for f in features] == [(4, 64), (4, 64)]
    ids = torch.tensor([[1, IMAGE, IMAGE, IMAGE, IMAGE, 2, IMAGE, IMAGE, IMAGE, IMAGE, 3]])
    with torch.no_grad():
        out = model(input_ids=ids, pixel_values=pixels)
    assert out.logits.shape == (1, 11, 128)
    assert torch.equal(out.image_hidden_states, torch.cat(features))


def test_save_and_load_give_identical_logits(model, tmp_path):
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists() and not list(tmp_path.glob("*.bin"))
    loaded = StormForConditionalGeneration.from_pretrained(tmp_path).eval()
    pixels = torch.randn(1, 8, 3, 32, 32)
    ids = torch.tensor([video_prompt(8)])
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids, pixel_values_videos=pixels).logits, loaded(input_ids=ids, pixel_values_videos=pixels).logits)


def test_loss_on_labels_trains_every_part(model):
    model.train()
    pixels = torch.randn(1, 8, 3, 32, 32)
    ids = torch.tensor([video_prompt(8)])
    labels = ids.clone()
    labels[ids == VIDEO] = -100
    out = model(input_ids=ids, pixel_values_videos=pixels, labels=labels)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    out.loss.backward()
    for part in ("vision_tower", "temporal_encoder", "language_model"):
        grads = [p.grad for n, p in model.model.named_parameters() if n.startswith(part) and p.grad is not None]
        assert grads and any(g.abs().sum() > 0 for g in grads), part


def test_gradient_checkpointing_gives_the_same_gradients(model):
    pixels = torch.randn(1, 8, 3, 32, 32)
    ids = torch.tensor([video_prompt(8)])

    def gradients():
        model.zero_grad()
        model(input_ids=ids, pixel_values_videos=pixels, labels=ids).loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    model.train()
    plain = gradients()
    model.gradient_checkpointing_enable()
    assert model.model.temporal_encoder.layers[0].gradient_checkpointing
    checkpointed = gradients()
    assert plain.keys() == checkpointed.keys()
    for name in plain:
        torch.testing.assert_close(plain[name], checkpointed[name], rtol=1e-4, atol=1e-6, msg=name)


def test_bfloat16_forward_is_close_to_float32(model):
    ids = torch.tensor([video_prompt(8)])
    pixels, other_pixels = torch.randn(2, 1, 8, 3, 32, 32)
    with torch.no_grad():
        expected = model(input_ids=ids, pixel_values_videos=pixels)
        other_video = model(input_ids=ids, pixel_values_videos=other_pixels).logits
        out = model.to(torch.bfloat16)(input_ids=ids, pixel_values_videos=pixels)
    assert out.logits.dtype == torch.bfloat16 and out.video_hidden_states.dtype == torch.bfloat16
    # measured: logits 0.005 from fp32 (1% of their largest value), video features 0.003; another video moves the
    # logits by 0.6
    torch.testing.assert_close(out.video_hidden_states.float(), expected.video_hidden_states, atol=0.02, rtol=0.02)
    torch.testing.assert_close(out.logits.float(), expected.logits, atol=0.02, rtol=0.02)
    assert (other_video - expected.logits).abs().max() > 0.1


def test_inputs_embeds_with_a_video_equals_input_ids(model):
    pixels = torch.randn(1, 8, 3, 32, 32)
    ids = torch.tensor([video_prompt(8)])
    with torch.no_grad():
        from_ids = model(input_ids=ids, pixel_values_videos=pixels)
        from_embeds = model(inputs_embeds=model.get_input_embeddings()(ids), pixel_values_videos=pixels)
    assert torch.equal(from_embeds.video_hidden_states, from_ids.video_hidden_states)
    torch.testing.assert_close(from_embeds.logits, from_ids.logits, rtol=0, atol=0)


def test_hidden_states_are_the_language_models_with_the_video_in_the_first(model):
    pixels = torch.randn(1, 8, 3, 32, 32)
    ids = torch.tensor([video_prompt(8)])
    with torch.no_grad():
        out = model(input_ids=ids, pixel_values_videos=pixels, output_hidden_states=True)
    assert len(out.hidden_states) == model.config.text_config.num_hidden_layers + 1
    embeds = model.get_input_embeddings()(ids).detach()
    embeds[ids == VIDEO] = out.video_hidden_states
    assert torch.equal(out.hidden_states[0], embeds)  # the LLM's input: text embeddings, video features
    with torch.no_grad():
        expected = model.model.language_model(inputs_embeds=embeds, output_hidden_states=True).hidden_states
    for got, want in zip(out.hidden_states, expected):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    torch.testing.assert_close(model.lm_head(out.hidden_states[-1]), out.logits)


def test_logits_to_keep_keeps_the_last_positions_or_the_given_ones(model):
    pixels = torch.randn(1, 8, 3, 32, 32)
    ids = torch.tensor([video_prompt(8)])
    with torch.no_grad():
        full = model(input_ids=ids, pixel_values_videos=pixels).logits
        last = model(input_ids=ids, pixel_values_videos=pixels, logits_to_keep=1).logits
        some = model(input_ids=ids, pixel_values_videos=pixels, logits_to_keep=torch.tensor([0, 4])).logits
    assert last.shape == (1, 1, 128) and some.shape == (1, 2, 128)
    torch.testing.assert_close(last, full[:, -1:])
    torch.testing.assert_close(some, full[:, [0, 4]])


def test_resized_token_embeddings_save_load_and_generate(model, tmp_path):
    """A tokenizer that grew by new tokens: the model takes their ids, and keeps them through save and load."""
    model.resize_token_embeddings(140, mean_resizing=False)
    assert model.config.text_config.vocab_size == 140
    assert model.get_input_embeddings().weight.shape[0] == model.lm_head.weight.shape[0] == 140
    pixels = torch.randn(1, 8, 3, 32, 32)
    ids = torch.tensor([video_prompt(8, suffix=(139, 5))])  # 139: a new token
    with torch.no_grad():
        out = model(input_ids=ids, pixel_values_videos=pixels, labels=ids)
    assert out.logits.shape == (1, ids.shape[1], 140) and torch.isfinite(out.loss)
    model.save_pretrained(tmp_path)
    loaded = StormForConditionalGeneration.from_pretrained(tmp_path).eval()
    assert loaded.config.text_config.vocab_size == 140
    with torch.no_grad():
        assert torch.equal(loaded(input_ids=ids, pixel_values_videos=pixels).logits, out.logits)
        generate = dict(input_ids=ids, pixel_values_videos=pixels, max_new_tokens=4, do_sample=False, pad_token_id=0)
        assert torch.equal(loaded.generate(**generate), model.generate(**generate))


def test_return_dict_false_gives_a_tuple_led_by_the_logits(model):
    pixels = torch.randn(1, 8, 3, 32, 32)
    ids = torch.tensor([video_prompt(8)])
    with torch.no_grad():
        as_dict = model(input_ids=ids, pixel_values_videos=pixels, labels=ids)
        as_tuple = model(input_ids=ids, pixel_values_videos=pixels, labels=ids, return_dict=False)
    assert isinstance(as_tuple, tuple)
    assert torch.equal(as_tuple[0], as_dict.loss) and torch.equal(as_tuple[1], as_dict.logits)
