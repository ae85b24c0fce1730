import re

import numpy as np
import pytest
import torch
from processor_testing import TINY_VIDEO_PROCESSOR, index_frames, pixel_indices
from transformers import AutoTokenizer
from transformers.dynamic_module_utils import get_class_from_dynamic_module

from storm_hf.processors.processing_storm import StormProcessor
from storm_hf.processors.video_decoding import VideoDecodingError
from storm_hf.processors.video_processing_storm import StormVideoProcessor


def runs(ids: list[int], token_id: int) -> list[tuple[int, int]]:
    """(start, length) of every run of `token_id` in `ids`."""
    found, start = [], None
    for position, value in enumerate(ids + [None]):
        if value == token_id and start is None:
            start = position
        elif value != token_id and start is not None:
            found.append((start, position - start))
            start = None
    return found


def conversation(video, question="What happens?"):
    return [{"role": "user", "content": [{"type": "video", "path": str(video)}, {"type": "text", "text": question}]}]


# ----- the token layout the model relies on -----


@pytest.mark.parametrize(
    "geometry, stride, slots, per_slot",
    [
        ({"temporal_pool_size": 2}, None, 4, 4),  # 8 frames / k=2
        ({"temporal_pool_size": 2}, 3, 2, 4),  # slots 0 and 3 of 4
        ({"temporal_pool_size": 4, "spatial_pool_size": 2}, 2, 1, 1),  # 2x2 grid pooled to 1x1, slots 0 of 2
        ({"temporal_pool_size": 1}, 2, 4, 4),
    ],
)
def test_each_kept_slot_is_its_video_tokens_then_one_separator(tokenizer, geometry, stride, slots, per_slot):
    processor = StormProcessor(StormVideoProcessor(**{**TINY_VIDEO_PROCESSOR, **geometry}), tokenizer)
    kwargs = {} if stride is None else {"temporal_sampling_stride": stride}
    out = processor(text="Look: <|video_pad|>\nWhat happens?", videos=index_frames(8), **kwargs)
    ids = out["input_ids"][0]
    video_runs = runs(ids, processor.video_token_id)
    assert [length for _, length in video_runs] == [per_slot] * slots
    assert all(ids[start + length] == processor.frame_separator_id for start, length in video_runs)
    assert ids.count(processor.video_token_id) == processor.video_processor.num_video_tokens(8, stride)
    # The separator after the last slot stays its own token even though the text goes on with a newline.
    last_start, last_length = video_runs[-1]
    after = last_start + last_length + 1
    assert ids[after:] == tokenizer("\nWhat happens?", add_special_tokens=False)["input_ids"]
    assert processor.frame_separator_id == tokenizer.convert_tokens_to_ids("Ċ")  # "\n"


def test_images_are_one_slot_of_image_tokens_and_a_separator(processor):
    out = processor(text="<|image_pad|>Who? <|image_pad|>", images=[index_frames(1)[0], index_frames(3)[2]])
    ids = out["input_ids"][0]
    image_runs = runs(ids, processor.image_token_id)
    assert [length for _, length in image_runs] == [4, 4]
    assert all(ids[start + length] == processor.frame_separator_id for start, length in image_runs)
    assert out["pixel_values"].shape == (2, 3, 32, 32)
    assert pixel_indices(out["pixel_values"]) == [0, 2]


def test_stride_reaches_the_batch_only_when_given(processor, make_video):
    text = "<|video_pad|>Describe."
    plain = processor(text=text, videos=make_video(60), num_frames=8)
    assert "temporal_sampling_stride" not in plain
    strided = processor(text=text, videos=make_video(60), num_frames=8, temporal_sampling_stride=2)
    assert strided["temporal_sampling_stride"] == 2 and type(strided["temporal_sampling_stride"]) is int
    assert strided["input_ids"][0].count(processor.video_token_id) == 2 * 4
    assert plain["input_ids"][0].count(processor.video_token_id) == 4 * 4


def test_a_token_budget_sets_the_stride_the_placeholders_are_counted_at(processor, make_video):
    # k = 2, 4 tokens per slot: 16 frames are 8 slots; a budget of 16 tokens keeps 4 of them, at s = 2
    out = processor(text="<|video_pad|>Describe.", videos=make_video(60), num_frames=16, max_video_tokens=16,
                    return_tensors="pt")
    assert out["temporal_sampling_stride"] == 2 and type(out["temporal_sampling_stride"]) is int
    ids = out["input_ids"][0].tolist()
    assert [length for _, length in runs(ids, processor.video_token_id)] == [4] * 4
    explicit = processor(text="<|video_pad|>Describe.", videos=make_video(60), num_frames=16, max_video_tokens=16,
                         temporal_sampling_stride=4)
    assert explicit["temporal_sampling_stride"] == 4 and explicit["input_ids"][0].count(processor.video_token_id) == 8


def test_a_token_budget_from_the_chat_template(processor, make_video):
    inputs = processor.apply_chat_template(
        conversation(make_video(60)), add_generation_prompt=True, tokenize=True, return_dict=True,
        return_tensors="pt", processor_kwargs={"num_frames": 16, "max_video_tokens": 8},
    )
    assert inputs["temporal_sampling_stride"] == 4
    assert int((inputs["input_ids"] == processor.video_token_id).sum()) == 8


# ----- chat template -----


def test_chat_template_renders_qwen2_style_turns(processor):
    messages = conversation("clip.mp4") + [
        {"role": "assistant", "content": [{"type": "text", "text": "A dog runs."}]},
        {"role": "user", "content": [{"type": "image", "url": "x.png"}, {"type": "text", "text": "And here?"}]},
    ]
    assert processor.apply_chat_template(messages, add_generation_prompt=True) == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n<|video_pad|>What happens?<|im_end|>\n"
        "<|im_start|>assistant\nA dog runs.<|im_end|>\n"
        "<|im_start|>user\n<|image_pad|>And here?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    with_system = [{"role": "system", "content": "Be brief."}, *conversation("clip.mp4")]
    rendered = processor.apply_chat_template(with_system)
    assert rendered.startswith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user")


@pytest.mark.parametrize("sampling, frames", [({"num_frames": 8}, 8), ({"fps": 1, "max_frames": 6}, 6)])
def test_chat_template_round_trip(processor, make_video, sampling, frames):
    video = make_video(300, gop_size=30)
    inputs = processor.apply_chat_template(
        conversation(video), add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt",
        processor_kwargs=dict(sampling),  # apply_chat_template adds keys to the dict it gets
    )
    assert inputs["pixel_values_videos"].shape == (1, frames, 3, 32, 32)
    assert inputs["video_frame_counts"].tolist() == [frames]
    prompt = processor.apply_chat_template(conversation(video), add_generation_prompt=True)
    direct = processor(text=prompt, videos=str(video), return_tensors="pt", **sampling)
    assert direct.keys() == inputs.keys()
    for key in direct:
        torch.testing.assert_close(inputs[key], direct[key])
    text = processor.decode(inputs["input_ids"][0])
    assert text.count("<|video_pad|>") == frames // 2 * 4
    assert text.endswith("What happens?<|im_end|>\n<|im_start|>assistant\n")


def test_assistant_tokens_mask_covers_the_answer(processor, make_video):
    answer = {"role": "assistant", "content": [{"type": "text", "text": "A cat jumps."}]}
    messages = conversation(make_video(60)) + [answer]
    inputs = processor.apply_chat_template(
        messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True, processor_kwargs={"num_frames": 4}
    )
    ids, mask = inputs["input_ids"][0], inputs["assistant_masks"][0]
    assert processor.decode([token for token, keep in zip(ids, mask) if keep]) == "A cat jumps.<|im_end|>"


# ----- batches -----


def test_batch_equals_single_with_left_padding(processor, make_video):
    conversations = [conversation(make_video(5)), conversation(make_video(300, gop_size=30), "And this long one?")]
    kwargs = {"tokenize": True, "return_dict": True, "return_tensors": "pt", "processor_kwargs": {"max_frames": 8}}
    batch = processor.apply_chat_template(conversations, **kwargs)
    singles = [processor.apply_chat_template(c, **kwargs) for c in conversations]
    assert batch["video_frame_counts"].tolist() == [6, 8]  # 5 frames + the last repeated
    assert batch["pixel_values_videos"].shape == (2, 8, 3, 32, 32)
    for row, single in enumerate(singles):
        length = single["input_ids"].shape[1]
        assert batch["input_ids"][row, -length:].tolist() == single["input_ids"][0].tolist()
        assert batch["attention_mask"][row].tolist() == [0] * (batch["input_ids"].shape[1] - length) + [1] * length
        count = int(single["video_frame_counts"][0])
        torch.testing.assert_close(batch["pixel_values_videos"][row, :count], single["pixel_values_videos"][0])
    assert pixel_indices(batch["pixel_values_videos"][0, :6]) == [0, 1, 2, 3, 4, 4]


# ----- bad input -----


@pytest.mark.parametrize(
    "text, num_videos, message",
    [
        ("<|video_pad|> and <|video_pad|>", 1, "has 2 <|video_pad|> placeholder(s) (per text: [2]) but 1 video(s)"),
        (["no video", "<|video_pad|>"], 2, "has 1 <|video_pad|> placeholder(s) (per text: [0, 1]) but 2 video(s)"),
        ("just text", 1, "has 0 <|video_pad|> placeholder(s) (per text: [0]) but 1 video(s)"),
    ],
)
def test_placeholders_must_match_the_videos(processor, text, num_videos, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        processor(text=text, videos=[index_frames(4)] * num_videos)


def test_placeholders_must_match_the_images(processor):
    message = "has 1 <|image_pad|> placeholder(s) (per text: [1]) but 0 image(s)"
    with pytest.raises(ValueError, match=re.escape(message)):
        processor(text="<|image_pad|> what is this?")


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"num_frames": 8, "fps": 1}, ValueError, "Got both num_frames=8 and fps=1"),
        ({"num_frames": 5}, ValueError, "num_frames=5 is not a multiple of the model's temporal pool size 2; use 4 or"),
        ({"temporal_sampling_stride": 0}, ValueError, "temporal_sampling_stride must be an integer >= 1, got 0"),
        ({"truncation": True, "max_length": 8}, ValueError, "StormProcessor does not truncate"),
    ],
)
def test_unusable_options(processor, make_video, kwargs, error, message):
    with pytest.raises(error, match=re.escape(message)):
        processor(text="<|video_pad|>", videos=make_video(60), **kwargs)


@pytest.mark.parametrize(
    "kind, message",
    [("missing", "Video file not found"), ("image", "is a still image"), ("audio", "has no video stream")],
)
def test_bad_files_in_a_chat_are_named(processor, bad_files, kind, message):
    with pytest.raises((FileNotFoundError, VideoDecodingError), match=message) as raised:
        processor.apply_chat_template(
            conversation(bad_files[kind]), tokenize=True, return_dict=True, processor_kwargs={"num_frames": 4}
        )
    assert str(bad_files[kind]) in str(raised.value)


def test_placeholder_tokens_must_be_single_tokens(tokenizer):
    with pytest.raises(ValueError, match="video_token='<video>' must be one token of the tokenizer"):
        StormProcessor(StormVideoProcessor(**TINY_VIDEO_PROCESSOR), tokenizer, video_token="<video>")


# ----- saving -----


def test_save_and_load_in_process(processor, make_video, tmp_path):
    processor.save_pretrained(tmp_path)  # importing storm_hf registered the classes with the Auto factories
    loaded = StormProcessor.from_pretrained(tmp_path)
    assert loaded.video_processor.to_dict() == processor.video_processor.to_dict()
    assert loaded.chat_template == processor.chat_template
    kwargs = {"tokenize": True, "return_dict": True, "return_tensors": "pt", "processor_kwargs": {"num_frames": 4}}
    expected = processor.apply_chat_template(conversation(make_video(60)), **kwargs)
    got = loaded.apply_chat_template(conversation(make_video(60)), **kwargs)
    for key in expected:
        torch.testing.assert_close(got[key], expected[key])


def test_save_and_load_as_hub_code(processor, make_video, tmp_path, monkeypatch):
    """The saved processor files run on their own, imported from the folder as transformers' remote code."""
    monkeypatch.setattr(StormProcessor, "_auto_class", "AutoProcessor")
    monkeypatch.setattr(StormVideoProcessor, "_auto_class", "AutoVideoProcessor")
    processor.save_pretrained(tmp_path)
    hub_code = {"processing_storm.py", "video_processing_storm.py", "video_decoding.py"}
    assert hub_code <= {path.name for path in tmp_path.iterdir()}
    remote_processor = get_class_from_dynamic_module("processing_storm.StormProcessor", tmp_path)
    remote_video_processor = get_class_from_dynamic_module("video_processing_storm.StormVideoProcessor", tmp_path)
    assert remote_processor.__module__.startswith("transformers_modules")
    loaded = remote_processor(remote_video_processor.from_pretrained(tmp_path), AutoTokenizer.from_pretrained(tmp_path))
    kwargs = {"text": "<|video_pad|>Hi", "videos": str(make_video(60)), "num_frames": 4, "temporal_sampling_stride": 2}
    out, expected = loaded(**kwargs), processor(**kwargs)
    assert out["input_ids"] == expected["input_ids"] and out["temporal_sampling_stride"] == 2
    torch.testing.assert_close(out["pixel_values_videos"], expected["pixel_values_videos"])
    assert np.array_equal(out["video_frame_counts"], expected["video_frame_counts"])
