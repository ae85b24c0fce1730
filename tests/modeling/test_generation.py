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
