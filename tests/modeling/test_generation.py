import pytest
import torch

from storm_hf.modeling.modeling_storm import StormForConditionalGeneration

VIDEO, IMAGE, PAD = 100, 101, 0


@pytest.fixture
def model(tiny_config):
    torch.manual_seed(0)
    model = StormForConditionalGeneration(tiny_config()).eval()
    model.generation_config.pad_token_id = PAD
    return model


def left_pad(rows):
    width = max(map(len, rows))
    ids = torch.tensor([[PAD] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    return ids, mask


def greedy(model, ids, mask, **inputs):
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=6, do_sample=False, **inputs)
    return out[:, ids.shape[1] :]


def test_generate_with_a_video(model):
    ids, mask = left_pad([[1, 2] + [VIDEO] * 8 + [3]])
    new = greedy(model, ids, mask, pixel_values_videos=torch.randn(1, 8, 3, 32, 32))
    assert new.shape == (1, 6)
    # the video matters: another video changes the logits of the first new token
    with torch.no_grad():
        a = model(input_ids=ids, pixel_values_videos=torch.randn(1, 8, 3, 32, 32)).logits[0, -1]
        b = model(input_ids=ids, pixel_values_videos=torch.randn(1, 8, 3, 32, 32)).logits[0, -1]
    assert not torch.allclose(a, b)


def first_step(model, ids, mask, pixels):
    """generate's first step: the logits of the first new token, and the embeddings the language model read."""
    seen = []
    hook = model.model.language_model.register_forward_pre_hook(
        lambda module, args, kw: seen.append(kw["inputs_embeds"]), with_kwargs=True
    )
    try:
        with torch.no_grad():
            out = model.generate(
                input_ids=ids, attention_mask=mask, pixel_values_videos=pixels, max_new_tokens=1, do_sample=False,
                output_logits=True, return_dict_in_generate=True,
            )
    finally:
        hook.remove()
    return out.logits[0], seen[0]


def test_the_first_generation_step_sees_the_video(model):
    ids, mask = left_pad([[1, 2] + [VIDEO] * 8 + [3]])
    video, other_video = torch.randn(2, 1, 8, 3, 32, 32)
    logits, embeds = first_step(model, ids, mask, video)
    with torch.no_grad():
        features = model.get_video_features(video).pooler_output[0]
        forward = model(input_ids=ids, attention_mask=mask, pixel_values_videos=video).logits[:, -1]
        without_video = model(input_ids=ids, attention_mask=mask).logits[:, -1]
    # the language model read the video's features at the placeholders, and gave a plain forward's logits
    assert torch.equal(embeds[ids == VIDEO], features)
    torch.testing.assert_close(logits, forward, rtol=1e-5, atol=1e-5)
    assert (forward - without_video).abs().max() > 0.05  # measured ~0.3: the placeholders alone give other logits
    # another video, another first step
    other_logits, other_embeds = first_step(model, ids, mask, other_video)
    assert (other_logits - logits).abs().max() > 0.05  # measured ~0.27
    with torch.no_grad():
        assert torch.equal(other_embeds[ids == VIDEO], model.get_video_features(other_video).pooler_output[0])


def test_generate_with_a_per_call_sampling_stride(model):
    ids, mask = left_pad([[1] + [VIDEO] * 8 + [3]])  # 16 frames, k=4 -> 4 slots, s=2 -> 2 slots of 4 tokens
    new = greedy(model, ids, mask, pixel_values_videos=torch.randn(1, 16, 3, 32, 32), temporal_sampling_stride=2)
    assert new.shape == (1, 6)


def test_generate_with_images_and_with_text_only(model):
    ids, mask = left_pad([[1] + [IMAGE] * 4 + [3]])
    assert greedy(model, ids, mask, pixel_values=torch.randn(1, 3, 32, 32)).shape == (1, 6)
    ids, mask = left_pad([[1, 2, 3]])
    assert greedy(model, ids, mask).shape == (1, 6)


def test_batched_generation_with_left_padding_equals_one_at_a_time(model):
    torch.manual_seed(3)
    videos = [torch.randn(8, 3, 32, 32), torch.randn(4, 3, 32, 32)]
    prompts = [[1, 2] + [VIDEO] * 8 + [3], [7] + [VIDEO] * 4 + [3, 9, 9]]
    padded = torch.zeros(2, 8, 3, 32, 32)
    padded[0], padded[1, :4] = videos
    ids, mask = left_pad(prompts)
    batched = greedy(model, ids, mask, pixel_values_videos=padded, video_frame_counts=torch.tensor([8, 4]))
    for row, (prompt, video) in enumerate(zip(prompts, videos)):
        single_ids, single_mask = left_pad([prompt])
        alone = greedy(model, single_ids, single_mask, pixel_values_videos=video[None])
        assert torch.equal(batched[row], alone[0])


def test_sampling_is_reproducible_with_a_seed_and_varies_without(model):
    ids, mask = left_pad([[1, 2] + [VIDEO] * 8 + [3]])
    pixels = torch.randn(1, 8, 3, 32, 32)

    def sample(seed):
        torch.manual_seed(seed)
        with torch.no_grad():
            out = model.generate(
                input_ids=ids, attention_mask=mask, pixel_values_videos=pixels, do_sample=True, temperature=5.0, max_new_tokens=12
            )
        return out[0, ids.shape[1] :]

    assert torch.equal(sample(0), sample(0))
    assert any(not torch.equal(sample(0), sample(seed)) for seed in range(1, 4))


def test_cache_on_and_off_give_the_same_greedy_answer(model):
    ids, mask = left_pad([[1, 2] + [VIDEO] * 8 + [3], [7] + [VIDEO] * 4 + [3, 9, 9]])
    pixels, counts = torch.randn(2, 8, 3, 32, 32), torch.tensor([8, 4])
    # Without a cache every step re-reads the whole sequence, so a generated placeholder token would count as one
    # more placeholder; this random model emits token 100 (the video token), so placeholders are suppressed.
    inputs = {"pixel_values_videos": pixels, "video_frame_counts": counts, "suppress_tokens": [VIDEO, IMAGE]}
    cached = greedy(model, ids, mask, **inputs)
    uncached = greedy(model, ids, mask, use_cache=False, **inputs)
    assert torch.equal(cached, uncached)


def beam_search(model, ids, mask, **inputs):
    with torch.no_grad():
        out = model.generate(
            input_ids=ids, attention_mask=mask, num_beams=3, max_new_tokens=5, do_sample=False, length_penalty=0.0,
            output_scores=True, return_dict_in_generate=True, **inputs,
        )
    return out.sequences[:, ids.shape[1] :], out.sequences_scores


def test_beam_search_scores_the_answer_with_the_video(model):
    """The best beam's score (length_penalty=0: the sum of its tokens' log-probabilities) is what a plain forward
    pass over prompt + answer with the same video gives, and another video changes it."""
    ids, mask = left_pad([[1, 2] + [VIDEO] * 8 + [3]])
    video, other_video = torch.randn(2, 1, 8, 3, 32, 32)
    answer, score = beam_search(model, ids, mask, pixel_values_videos=video)
    sequence = torch.cat([ids, answer], dim=1)

    def log_likelihood(pixels):
        with torch.no_grad():
            logits = model(input_ids=sequence, pixel_values_videos=pixels).logits[0, ids.shape[1] - 1 : -1]
        return logits.log_softmax(-1).gather(-1, answer[0, :, None]).sum()

    torch.testing.assert_close(score[0], log_likelihood(video), rtol=1e-4, atol=1e-4)
    assert (log_likelihood(other_video) - score[0]).abs() > 1e-2


def test_beam_search_on_a_batch_with_one_video_per_prompt_equals_one_prompt_at_a_time(model):
    videos = [torch.randn(8, 3, 32, 32), torch.randn(4, 3, 32, 32)]
    prompts = [[1, 2] + [VIDEO] * 8 + [3], [7] + [VIDEO] * 4 + [3, 9, 9]]
    padded = torch.zeros(2, 8, 3, 32, 32)
    padded[0], padded[1, :4] = videos
    ids, mask = left_pad(prompts)
    batched, batched_scores = beam_search(
        model, ids, mask, pixel_values_videos=padded, video_frame_counts=torch.tensor([8, 4])
    )
    for row, (prompt, video) in enumerate(zip(prompts, videos)):
        alone, alone_score = beam_search(model, *left_pad([prompt]), pixel_values_videos=video[None])
        assert torch.equal(batched[row], alone[0])
        torch.testing.assert_close(batched_scores[row], alone_score[0], rtol=1e-4, atol=1e-4)


def test_inputs_embeds_generation_equals_input_ids_generation(model):
    ids, mask = left_pad([[1, 2] + [VIDEO] * 8 + [3]])
    pixels = torch.randn(1, 8, 3, 32, 32)
    from_ids = greedy(model, ids, mask, pixel_values_videos=pixels)
    with torch.no_grad():
        embeds = model.get_input_embeddings()(ids)
        from_embeds = model.generate(
            inputs_embeds=embeds, attention_mask=mask, pixel_values_videos=pixels, max_new_tokens=6, do_sample=False
        )
    assert torch.equal(from_embeds, from_ids)  # from embeddings, generate returns only the new tokens
