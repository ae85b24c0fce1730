"""The processor's placeholder counts equal the tiny model's feature counts for every pooling/sampling setting."""

import pytest
import torch
from processor_testing import TINY_VIDEO_PROCESSOR, index_frames

from storm_hf.modeling.modeling_storm import StormForConditionalGeneration
from storm_hf.processors.processing_storm import StormProcessor
from storm_hf.processors.video_processing_storm import StormVideoProcessor


def tiny_pair(tiny_config, tokenizer, k: int, p: int):
    """A tiny model and a processor that share k (temporal pool) and p (spatial pool)."""
    config = tiny_config(
        text={"vocab_size": len(tokenizer)}, temporal_config={"temporal_pool_size": k, "spatial_pool_size": p}
    )
    processor = StormProcessor(
        StormVideoProcessor(**{**TINY_VIDEO_PROCESSOR, "temporal_pool_size": k, "spatial_pool_size": p}), tokenizer
    )
    config.video_token_id, config.image_token_id = processor.video_token_id, processor.image_token_id
    torch.manual_seed(0)
    return StormForConditionalGeneration(config).eval(), processor


@pytest.mark.parametrize(
    "k, p, stride",
    [(1, 1, None), (2, 1, None), (2, 1, 3), (2, 2, 2), (4, 1, 1), (4, 2, 4)],
)
def test_video_and_image_tokens_equal_model_features(tiny_config, tokenizer, k, p, stride):
    model, processor = tiny_pair(tiny_config, tokenizer, k, p)
    kwargs = {} if stride is None else {"temporal_sampling_stride": stride}
    inputs = processor(
        text=["<|video_pad|>What happens?", "Compare <|video_pad|> with <|image_pad|>"],
        videos=[index_frames(16), index_frames(5)],  # 8 frames, and 5 frames padded to a multiple of k
        images=[index_frames(1)[0]],
        num_frames=8,
        return_tensors="pt",
        **kwargs,
    )
    with torch.no_grad():
        videos = model.get_video_features(
            inputs["pixel_values_videos"], inputs["video_frame_counts"], inputs.get("temporal_sampling_stride")
        ).pooler_output
        images = model.get_image_features(inputs["pixel_values"]).pooler_output
    video_tokens = (inputs["input_ids"] == processor.video_token_id).sum(dim=1).tolist()
    assert [len(features) for features in videos] == video_tokens
    assert [len(features) for features in images] == [int((inputs["input_ids"] == processor.image_token_id).sum())]
    counts = inputs["video_frame_counts"].tolist()
    assert video_tokens == [processor.video_processor.num_video_tokens(count, stride) for count in counts]


def test_generate_takes_the_processor_output_as_is(tiny_config, tokenizer, make_video):
    model, processor = tiny_pair(tiny_config, tokenizer, k=2, p=1)
    conversations = [
        [{"role": "user", "content": [{"type": "video", "path": str(make_video(frames))}, {"type": "text", "text": q}]}]
        for frames, q in ((60, "Why?"), (5, "Hm?"))
    ]
    inputs = processor.apply_chat_template(
        conversations, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt",
        processor_kwargs={"num_frames": 8, "temporal_sampling_stride": 2},
    )
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert output.shape == (2, inputs["input_ids"].shape[1] + 3)
    # The stride travelled with the batch: without it the model would expect twice the video tokens.
    with pytest.raises(ValueError, match="video placeholder tokens but the video features have"):
        model(**{key: value for key, value in inputs.items() if key != "temporal_sampling_stride"})


def test_the_stride_a_budget_chose_reaches_the_model(tiny_config, tokenizer, make_video):
    model, processor = tiny_pair(tiny_config, tokenizer, k=2, p=1)
    inputs = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "video", "path": str(make_video(60))}, {"type": "text", "text": "Why?"}]}],
        add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt",
        processor_kwargs={"num_frames": 16, "max_video_tokens": 12},  # 8 slots of 4 tokens: 3 slots fit, s = 3
    )
    assert inputs["temporal_sampling_stride"] == 3
    with torch.no_grad():
        features = model.get_video_features(
            inputs["pixel_values_videos"], inputs["video_frame_counts"], inputs["temporal_sampling_stride"]
        ).pooler_output
        output = model.generate(**inputs, max_new_tokens=2, do_sample=False)
    assert [len(f) for f in features] == [int((inputs["input_ids"] == processor.video_token_id).sum())] == [12]
    assert output.shape == (1, inputs["input_ids"].shape[1] + 2)
