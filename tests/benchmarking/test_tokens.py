"""The benchmark's token accounting and prompts agree with the model's features and with StormProcessor."""

import numpy as np
import pytest
import torch

from storm_hf.benchmarking.scales import SCALES, SETTINGS, build_config
from storm_hf.benchmarking.tokens import SEPARATOR_ID, count_tokens, prompt_ids, video_processor_for
from storm_hf.modeling.modeling_storm import StormForConditionalGeneration
from storm_hf.processors.processing_storm import StormProcessor
from storm_hf.tokenization import build_tokenizer

TINY = SCALES["tiny"]


def tiny_model(setting):
    torch.manual_seed(0)
    return StormForConditionalGeneration(build_config(TINY, setting)).eval()


@pytest.mark.parametrize("name", list(SETTINGS))
def test_token_counts_equal_the_models_features_and_fill_the_prompt(name):
    setting = SETTINGS[name]
    model = tiny_model(setting)
    stride = setting.temporal_sampling_stride
    for frames in (8, 16):
        count = count_tokens(model.config, setting, frames)
        pixels = torch.randn(1, frames, 3, 32, 32)
        with torch.no_grad():
            features = model.get_video_features(pixels, temporal_sampling_stride=stride).pooler_output[0]
            ids = prompt_ids(model.config, count)
            # the model accepts the prompt: every placeholder is filled, none is left over
            out = model.model(input_ids=ids, pixel_values_videos=pixels, temporal_sampling_stride=stride)
        assert features.shape[0] == count.video_tokens
        assert int((ids == model.config.video_token_id).sum()) == count.video_tokens
        assert int((ids == SEPARATOR_ID).sum()) == count.slots
        assert torch.equal(out.video_hidden_states, features)


def test_expected_counts_at_the_cpu_scale():
    """cpu scale: 224 px / 14 = 16x16 patches -> 8x8 = 64 tokens per slot before spatial pooling."""
    expected = {"baseline": 128 * 64, "storm": 128 * 64, "k4": 32 * 64, "k4-s2": 16 * 64, "k4-spatial4": 32 * 16}
    for name, video_tokens in expected.items():
        count = count_tokens(build_config(SCALES["cpu"], SETTINGS[name]), SETTINGS[name], 128)
        assert count.video_tokens == video_tokens


@pytest.mark.parametrize("name", list(SETTINGS))
def test_prompt_layout_is_the_processors(name):
    setting = SETTINGS[name]
    config = build_config(TINY, setting)
    tokenizer = build_tokenizer(["Describe the video.\nWhat happens next?"], vocab_size=300)
    processor = StormProcessor(video_processor_for(config), tokenizer)
    frames = np.zeros((8, 32, 32, 3), np.uint8)
    stride = setting.temporal_sampling_stride
    out = processor(text="<|video_pad|>", videos=frames, num_frames=8, temporal_sampling_stride=stride)
    theirs = out["input_ids"][0]
    count = count_tokens(config, setting, 8)
    assert len(theirs) == count.llm_visual_tokens  # what the processor's video placeholder expands to
    # the benchmark's video part, in the processor's token ids
    ours = prompt_ids(config, count)[0].tolist()
    mapping = {config.video_token_id: processor.video_token_id, SEPARATOR_ID: processor.frame_separator_id}
    ours_video = [mapping[t] for t in ours if t in mapping]
    assert ours_video == list(theirs)


def test_paper_scale_reproduces_the_papers_token_table():
    """STORM_SPEC section 2: 256 video tokens per frame before reduction, at 32 / 128 / 256 frames."""
    table = {
        "storm": (8_192, 32_768, 65_536),
        "k4": (2_048, 8_192, 16_384),
        "k4-s2": (1_024, 4_096, 8_192),
        "k4-spatial4": (512, 2_048, 4_096),
    }
    for name, row in table.items():
        config = build_config(SCALES["paper"], SETTINGS[name])
        assert tuple(count_tokens(config, SETTINGS[name], frames).video_tokens for frames in (32, 128, 256)) == row
