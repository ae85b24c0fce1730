"""StormStreamingSession: a stream's features and answers equal the offline model's on the same frames."""

import numpy as np
import pytest
import torch
from streaming_testing import (
    ANSWER,
    POOL,
    QUESTION,
    EmbedsRecorder,
    build_model,
    build_processor,
    coloured_video,
    offline_answer,
    offline_inputs,
    stream_frames,
)

from storm_hf import StormStreamingSession
from storm_hf.data.video_writer import write_video
from storm_hf.modeling.streaming_storm import FrameRateSampler
from storm_hf.processors.video_decoding import VideoReader

RED, BLUE = (230, 40, 40), (40, 60, 230)


@pytest.fixture(scope="module")
def processor():
    return build_processor()


@pytest.fixture(scope="module")
def model(tiny_config, processor):
    return build_model(tiny_config, processor)


@pytest.fixture(scope="module")
def video():
    return coloured_video(22, RED)


@pytest.mark.parametrize(
    "sizes, stride, frames",
    [
        ([1], 1, 22),
        ([3], 2, 22),
        ([POOL], 2, 24),
        ([2 * POOL + 1], 1, 22),
        ([2 * POOL + 1], 3, 22),
        ([5, 1, 2], 2, 13),
        ([3], 2, 3),  # fewer frames than one slot
    ],
)
def test_streamed_answer_equals_offline_whatever_the_arrival_pattern(model, processor, sizes, stride, frames):
    clip = coloured_video(frames, RED)
    session = model.start_stream(processor, temporal_sampling_stride=stride)
    stream_frames(session, clip, sizes)
    assert session.frames_seen == frames
    assert torch.equal(session.answer_ids(QUESTION, **ANSWER), offline_answer(model, processor, clip, stride=stride))


@pytest.mark.parametrize("stride", [1, 2])
def test_streamed_features_equal_offline_to_fp32_rounding(model, processor, video, stride):
    """Every embedding the language model reads (the text, each kept slot's features in place) matches the offline
    prompt's."""
    inputs = offline_inputs(processor, video, stride=stride)
    recorder = EmbedsRecorder(model)
    try:
        with torch.no_grad():
            model(**inputs)
        offline = recorder.calls.pop()[0]  # (L, D): the whole prompt
        session = model.start_stream(processor, temporal_sampling_stride=stride)
        stream_frames(session, video, [3])
        session.answer_ids(QUESTION, **ANSWER)
    finally:
        recorder.remove()
    streamed = torch.cat([call[0] for call in recorder.calls])[: len(offline)]  # prefix, slots, question, ...
    torch.testing.assert_close(streamed, offline, rtol=1e-5, atol=1e-5)
    video_rows = inputs["input_ids"][0] == processor.video_token_id
    assert int(video_rows.sum()) == session.video_tokens + 4  # the last slot (22 = 5 x 4 + 2 frames) is pending


def test_the_video_matters(model, processor, video):
    """Two videos of other colours give other features and other answers, so equal answers mean something."""
    blue = coloured_video(22, BLUE)
    features = {
        name: model.get_video_features(offline_inputs(processor, clip)["pixel_values_videos"]).pooler_output[0]
        for name, clip in (("red", video), ("blue", blue))
    }
    assert (features["red"] - features["blue"]).abs().mean() > 0.1 * features["red"].abs().mean()
    answers = {}
    for name, clip in (("red", video), ("blue", blue)):
        session = model.start_stream(processor)
        session.add_frames(clip)
        answers[name] = session.answer_ids(QUESTION, **ANSWER)
    assert not torch.equal(answers["red"], answers["blue"])


def test_questions_at_several_moments_leave_the_stream_unchanged(model, processor, video):
    session = model.start_stream(processor, temporal_sampling_stride=2)
    asked = {}
    for stop in (5, 8, 13, 22):
        session.add_frames(video[session.frames_seen : stop])
        asked[stop] = session.answer_ids(QUESTION, **ANSWER)
        session.answer_ids("Describe the video in detail.", **ANSWER)  # another question in between
    for stop, answer in asked.items():
        fresh = model.start_stream(processor, temporal_sampling_stride=2)
        fresh.add_frames(video[:stop])
        assert torch.equal(fresh.answer_ids(QUESTION, **ANSWER), answer), stop


def test_reset_starts_a_new_stream(model, processor, video):
    session = model.start_stream(processor)
    session.add_frames(coloured_video(12, BLUE))
    session.reset()
    assert (session.frames_seen, session.video_tokens) == (0, 0)
    session.add_frames(video)
    assert torch.equal(session.answer_ids(QUESTION, **ANSWER), offline_answer(model, processor, video))


def test_bf16_stream_equals_offline_to_rounding(tiny_config, processor, video):
    model = build_model(tiny_config, processor).to(torch.bfloat16)
    inputs = offline_inputs(processor, video)
    recorder = EmbedsRecorder(model)
    try:
        with torch.no_grad():
            model(**inputs)
        offline = recorder.calls.pop()[0].float()
        session = model.start_stream(processor)
        stream_frames(session, video, [3])
        answer = session.answer_ids(QUESTION, **ANSWER)
    finally:
        recorder.remove()
    streamed = torch.cat([call[0] for call in recorder.calls])[: len(offline)].float()
    assert (streamed - offline).abs().max() <= 4 * 2**-8 * offline.abs().max()
    assert torch.equal(answer, offline_answer(model, processor, video))


def test_frames_of_every_kind_give_the_same_answer(model, processor, video):
    import PIL.Image

    reference = offline_answer(model, processor, video)
    kinds = {
        "pil": [PIL.Image.fromarray(frame) for frame in video],
        "tensor channels first": torch.from_numpy(video).permute(0, 3, 1, 2),
        "one frame at a time": None,
    }
    for name, frames in kinds.items():
        session = model.start_stream(processor)
        if frames is None:
            for frame in video:
                session.add_frames(frame)
        else:
            session.add_frames(frames)
        assert torch.equal(session.answer_ids(QUESTION, **ANSWER), reference), name


def test_a_video_file_streams_like_its_decoded_frames(model, processor, tmp_path):
    path = write_video(tmp_path / "clip.mkv", coloured_video(22, RED), fps=8)
    with VideoReader(path) as reader:
        frames = reader.read(np.arange(reader.index.num_frames))  # the frames as the codec left them
    session = model.start_stream(processor)
    assert session.add_frames(path) == 22
    assert torch.equal(session.answer_ids(QUESTION, **ANSWER), offline_answer(model, processor, frames))
    sampled = model.start_stream(processor, fps=4)  # the file's own timestamps choose every other frame
    assert sampled.add_frames(str(path)) == 11
    assert torch.equal(sampled.answer_ids(QUESTION, **ANSWER), offline_answer(model, processor, frames[::2]))


def test_frame_rate_sampler_keeps_the_first_frame_of_each_interval():
    sampler = FrameRateSampler(10)
    times = np.arange(30) / 30  # 30 fps for one second
    assert [i for i, t in enumerate(times) if sampler.keep(t)] == list(range(0, 30, 3))
    sampler = FrameRateSampler(2)
    irregular = [5.0, 5.1, 5.4, 5.5, 5.6, 6.2, 7.9]  # intervals of 0.5 s from the first frame
    assert [t for t in irregular if sampler.keep(t)] == [5.0, 5.5, 6.2, 7.9]
    with pytest.raises(ValueError, match="must not go back"):
        sampler.keep(7.0)
    with pytest.raises(ValueError, match="fps must be a positive number"):
        FrameRateSampler(0)


def test_fps_sampling_as_frames_arrive_equals_offline_on_the_kept_frames(model, processor):
    clip = coloured_video(40, RED)
    times = np.arange(40) / 20  # a 20 fps source, sampled at 5 fps: every 4th frame
    session = model.start_stream(processor, fps=5)
    for start in range(0, 40, 7):
        session.add_frames(clip[start : start + 7], timestamps=times[start : start + 7])
    assert session.frames_seen == 10
    assert torch.equal(session.answer_ids(QUESTION, **ANSWER), offline_answer(model, processor, clip[::4]))
    with pytest.raises(ValueError, match="pass timestamps="):
        session.add_frames(clip[:2])


def test_a_model_without_mamba_blocks_streams(tiny_config, processor, video):
    model = build_model(tiny_config, processor, num_layers=0, bidirectional=True)
    session = model.start_stream(processor)
    stream_frames(session, video, [5])
    assert torch.equal(session.answer_ids(QUESTION, **ANSWER), offline_answer(model, processor, video))


def test_a_bidirectional_model_refuses_to_stream_and_says_what_to_use(tiny_config, processor):
    model = build_model(tiny_config, processor, bidirectional=True)
    with pytest.raises(ValueError) as error:
        model.start_stream(processor)
    message = str(error.value)
    assert "bidirectional" in message and "frames that have not arrived yet" in message
    assert "bidirectional=False" in message and "model.generate" in message


def test_bad_settings_and_calls_get_clear_errors(model, processor, tiny_config):
    with pytest.raises(ValueError, match="holds no temporal slot: a slot is 4 video tokens"):
        model.start_stream(processor, max_video_tokens=3)
    session = model.start_stream(processor)
    with pytest.raises(ValueError, match="No frame has been added yet"):
        session.ask(QUESTION)
    with pytest.raises(TypeError, match="Cannot read frames from a dict"):
        session.add_frames({"frame": 1})
    with pytest.raises(ValueError, match="apply to video sources"):
        session.add_frames(coloured_video(2, RED), follow=True)
    with pytest.raises(ValueError, match="Got no frames"):
        session.add_frames(coloured_video(0, RED))
    other = build_processor()
    other.video_processor.temporal_pool_size = 2
    with pytest.raises(ValueError, match="pools 2 frames per temporal slot, the model 4"):
        StormStreamingSession(model, other)
    other = build_processor()
    other.video_processor.spatial_pool_size = 2
    with pytest.raises(ValueError, match="counts 1 tokens per temporal slot, the model makes 4"):
        StormStreamingSession(model, other)
