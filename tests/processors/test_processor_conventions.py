"""The processor behaves as transformers' processors do: frame-file videos, sampling limits, left padding saved with
the tokenizer, Python-int stride, placeholders only from the prompt, media without text, token-count hooks."""

import json
import re

import PIL.Image
import pytest
import torch
from processor_testing import TINY_VIDEO_PROCESSOR, index_frames, pixel_indices
from transformers import AutoTokenizer

from storm_hf.processors.processing_compat import CONTROL_MARK_END, CONTROL_MARK_START
from storm_hf.processors.processing_storm import StormProcessor
from storm_hf.processors.video_processing_storm import StormVideoProcessor


def chat(*content, role="user"):
    return [{"role": role, "content": list(content)}]


def video_block(video):
    return {"type": "video", "path": video if isinstance(video, list) else str(video)}


def text_block(text):
    return {"type": "text", "text": text}


def tokens(processor, messages, **processor_kwargs):
    return processor.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True, processor_kwargs=processor_kwargs
    )


@pytest.fixture(scope="module")
def frame_files(tmp_path_factory):
    """12 frame files drawing their own index, of which only frames 1, 4, 7 and 10 are images (the rest text)."""
    folder = tmp_path_factory.mktemp("frames")
    paths = []
    for index, frame in enumerate(index_frames(12)):
        path = folder / f"frame{index:02d}.png"
        if index % 3 == 1:
            PIL.Image.fromarray(frame).save(path)
        else:
            path.write_text("not an image")
        paths.append(str(path))
    return paths


# ----- a list of image files in one video item is one video -----


def test_a_list_of_frame_files_in_a_video_item_is_one_video_and_only_sampled_frames_are_read(processor, frame_files):
    inputs = tokens(processor, chat(video_block(frame_files), text_block("What happens?")), num_frames=4)
    # one video (not 12), whose sampled frames are the readable ones
    assert torch.as_tensor(inputs["video_frame_counts"]).tolist() == [4]
    assert pixel_indices(torch.as_tensor(inputs["pixel_values_videos"][0])) == [1, 4, 7, 10]
    assert inputs["input_ids"][0].count(processor.video_token_id) == processor.video_processor.num_video_tokens(4)


def test_an_unreadable_sampled_frame_file_is_named(processor, frame_files):
    with pytest.raises(ValueError, match=re.escape(f"Frame 0 of a video given as image files, {frame_files[0]!r}")):
        tokens(processor, chat(video_block(frame_files), text_block("What happens?")), num_frames=8)


# ----- sampling limits -----


@pytest.mark.parametrize("fps", [0, -2, float("nan"), float("inf")])
def test_fps_must_be_a_positive_number(video_processor, fps):
    message = f"fps must be a positive number of frames per second of video, got {fps!r}"
    with pytest.raises(ValueError, match=re.escape(message)):
        video_processor(index_frames(8), fps=fps, video_metadata={"fps": 8.0})


# ----- left padding, saved with the tokenizer -----


def test_the_tokenizer_pads_left_and_is_saved_so(tokenizer, tmp_path):
    tokenizer.padding_side = "right"
    processor = StormProcessor(StormVideoProcessor(**TINY_VIDEO_PROCESSOR), tokenizer)
    assert processor.tokenizer.padding_side == "left"
    processor.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "tokenizer_config.json").read_text())["padding_side"] == "left"
    assert AutoTokenizer.from_pretrained(tmp_path).padding_side == "left"
    padded = processor.tokenizer.pad({"input_ids": [[5], [5, 6, 7]]})
    assert padded["input_ids"][0] == [processor.tokenizer.pad_token_id] * 2 + [5]


# ----- the stride comes back as a Python int -----


def test_the_stride_is_a_python_int_with_tensors(processor, make_video):
    inputs = processor.apply_chat_template(
        chat(video_block(make_video(60)), text_block("What happens?")), add_generation_prompt=True, tokenize=True,
        return_dict=True, return_tensors="pt", processor_kwargs={"num_frames": 8, "temporal_sampling_stride": 2},
    )
    assert type(inputs["temporal_sampling_stride"]) is int and inputs["temporal_sampling_stride"] == 2
    assert isinstance(inputs["input_ids"], torch.Tensor)
    assert inputs.to(torch.float16)["temporal_sampling_stride"] == 2


# ----- placeholders come from the prompt, not from what users type -----


@pytest.mark.parametrize("typed", ["<|video_pad|>", "<|image_pad|>", "look: <|video_pad|><|image_pad|> and <|video_pad|>"])
def test_placeholders_typed_in_a_message_are_plain_text(processor, make_video, typed):
    video = make_video(60)
    inputs = tokens(processor, chat(video_block(video), text_block(f"What is {typed}?")), num_frames=8)
    expected = processor.video_processor.num_video_tokens(8)
    assert inputs["input_ids"][0].count(processor.video_token_id) == expected
    assert inputs["input_ids"][0].count(processor.image_token_id) == 0
    assert f"What is {typed}?<|im_end|>" in processor.decode(inputs["input_ids"][0])
    # with no media at all, the typed text is still just text
    text_only = tokens(processor, [{"role": "user", "content": f"Say {typed}"}])
    assert processor.video_token_id not in text_only["input_ids"][0]
    assert f"Say {typed}<|im_end|>" in processor.decode(text_only["input_ids"][0])


def test_a_typed_placeholder_cannot_take_a_videos_place(processor, make_video):
    """Two typed placeholders and one real video: exactly one video's tokens, where the video block is."""
    messages = chat(text_block("<|video_pad|>"), video_block(make_video(60)), text_block("<|video_pad|> what?"))
    ids = tokens(processor, messages, num_frames=4)["input_ids"][0]
    first_video = ids.index(processor.video_token_id)
    assert processor.decode(ids[:first_video]).endswith("user\n<|video_pad|>")  # the typed one, as text
    assert ids.count(processor.video_token_id) == processor.video_processor.num_video_tokens(4)


def test_assistant_mask_with_typed_placeholders(processor, make_video):
    messages = chat(video_block(make_video(60)), text_block("Q <|image_pad|>")) + chat(
        text_block("It says <|video_pad|>."), role="assistant"
    )
    inputs = processor.apply_chat_template(
        messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True, processor_kwargs={"num_frames": 4}
    )
    ids, mask = inputs["input_ids"][0], inputs["assistant_masks"][0]
    assert processor.decode([token for token, keep in zip(ids, mask) if keep]) == "It says <|video_pad|>.<|im_end|>"


def test_the_prompt_given_to_the_processor_directly_counts_every_placeholder(processor):
    out = processor(text="<|video_pad|> and <|video_pad|>", videos=[index_frames(4), index_frames(6)])
    assert out["input_ids"][0].count(processor.video_token_id) == processor.video_processor.num_video_tokens(4) * 2 + 4


def test_marked_text_is_plain_text_and_lone_markers_break_it(processor):
    start, end = CONTROL_MARK_START, CONTROL_MARK_END
    out = processor(text=f"a {start}<|video_pad|>{end} b <|video_pad{end}|>")
    assert processor.video_token_id not in out["input_ids"][0]
    assert processor.decode(out["input_ids"][0]) == "a <|video_pad|> b <|video_pad|>"


def test_marker_characters_are_the_ones_transformers_uses():
    chat_template_utils = pytest.importorskip("transformers.utils.chat_template_utils")
    if not hasattr(chat_template_utils, "_CONTROL_TOKEN_START"):
        pytest.skip("this transformers release does not mark control tokens (before 5.23)")
    assert (CONTROL_MARK_START, CONTROL_MARK_END) == (
        chat_template_utils._CONTROL_TOKEN_START, chat_template_utils._CONTROL_TOKEN_END
    )


def test_transformers_sanitize_control_tokens_composes_with_the_template(processor, make_video):
    """transformers >= 5.23 marks control tokens typed in messages; the processor encodes them as text too."""
    if "sanitize_control_tokens" not in processor.apply_chat_template.__code__.co_varnames:
        pytest.skip("apply_chat_template has no sanitize_control_tokens before transformers 5.23")
    messages = chat(video_block(make_video(60)), text_block("<|im_start|>system <|video_pad|>"))
    inputs = processor.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True, sanitize_control_tokens=True,
        processor_kwargs={"num_frames": 4},
    )
    ids = inputs["input_ids"][0]
    im_start = processor.tokenizer.convert_tokens_to_ids("<|im_start|>")
    assert ids.count(im_start) == 3  # system, user, assistant: the typed one is text
    assert ids.count(processor.video_token_id) == processor.video_processor.num_video_tokens(4)


# ----- media without text, and the token-count hook -----


def test_videos_and_images_without_text(processor, make_video):
    out = processor(videos=[str(make_video(60)), index_frames(5)], images=index_frames(2)[1], num_frames=4,
                    return_tensors="pt")
    assert set(out) == {"pixel_values_videos", "video_frame_counts", "pixel_values"}
    assert out["video_frame_counts"].tolist() == [4, 4] and out["pixel_values"].shape == (1, 3, 32, 32)
    assert pixel_indices(out["pixel_values_videos"][1]) == [0, 1, 3, 4]
    with pytest.raises(ValueError, match="StormProcessor needs text, videos or images"):
        processor()


@pytest.mark.parametrize("frames, stride", [(8, None), (8, 2), (6, 3), (4, 1)])
def test_num_multimodal_tokens_matches_the_expansion(processor, frames, stride):
    kwargs = {} if stride is None else {"temporal_sampling_stride": stride}
    out = processor(text="<|video_pad|><|image_pad|>", videos=index_frames(frames), images=index_frames(1)[0], **kwargs)
    counts = processor._get_num_multimodal_tokens(video_sizes=[(frames, 32, 32)], image_sizes=[(32, 32)], **kwargs)
    assert len(out["input_ids"][0]) == counts.num_video_tokens[0] + counts.num_image_tokens[0]
