import io
import logging
import re

import numpy as np
import PIL.Image
import pytest
import torch
from processor_testing import TINY_VIDEO_PROCESSOR, index_frames, pixel_indices

from storm_hf.processors.video_processing_storm import StormVideoMetadata, StormVideoProcessor


def sampled(processor, video, **kwargs):
    """(frame indices read from the pixels, the metadata) of one processed video."""
    out = processor(video, return_metadata=True, **kwargs)
    count = int(out["video_frame_counts"][0])
    return pixel_indices(out["pixel_values_videos"][0, :count]), out["video_metadata"][0]


def indices_for(total, k=4, video_fps=30.0, **sampling):
    """Frames sample_frames picks from a constant-rate video of `total` frames."""
    metadata = StormVideoMetadata(total_num_frames=total, fps=video_fps, duration=total / video_fps)
    return StormVideoProcessor(temporal_pool_size=k).sample_frames(metadata, **sampling).tolist()


# ----- sampling rules -----


def test_num_frames_are_the_middle_frames_of_equal_segments(video_processor, make_video):
    got, metadata = sampled(video_processor, make_video(300, gop_size=30), num_frames=8)
    expected = [(2 * i + 1) * 300 // 16 for i in range(8)]
    assert got == metadata.frames_indices == expected
    assert metadata.timestamps == pytest.approx([i / 30 for i in expected])


def test_fps_sampling_picks_frames_by_time(video_processor, make_video):
    got, metadata = sampled(video_processor, make_video(300, gop_size=250), fps=2)  # 10 s -> 20 frames
    expected = [int((j + 0.5) * 0.5 * 30) for j in range(20)]
    assert got == metadata.frames_indices == expected
    assert (metadata.fps, metadata.duration, metadata.total_num_frames) == (30.0, 10.0, 300)


def test_fps_sampling_at_a_variable_frame_rate(video_processor, make_video, vfr_timestamps):
    got, metadata = sampled(video_processor, make_video(60, timestamps=vfr_timestamps, gop_size=12), fps=2)
    count = len(got)
    assert count == 2 * round(metadata.duration * 2 / 2) and count % 2 == 0
    times = (np.arange(count) + 0.5) * metadata.duration / count
    # Each chosen frame is the one on screen at the middle of its time segment.
    expected = [int(np.searchsorted(vfr_timestamps, t + 1e-9, side="right") - 1) for t in times]
    assert got == metadata.frames_indices == expected
    assert metadata.timestamps == pytest.approx(vfr_timestamps[expected], abs=1e-4)


def test_num_frames_must_be_a_multiple_of_the_temporal_pool(video_processor, make_video):
    message = "num_frames=7 is not a multiple of the model's temporal pool size 2; use 6 or 8"
    with pytest.raises(ValueError, match=re.escape(message)):
        video_processor(make_video(60), num_frames=7)
    with pytest.raises(ValueError, match=re.escape("use 4 or 8")):
        StormVideoProcessor(temporal_pool_size=4).sample_frames(StormVideoMetadata(total_num_frames=60), num_frames=6)


@pytest.mark.parametrize(
    "seconds, fps, limits, expected_count",
    [
        (10, 1.0, {}, 12),  # 10 frames -> nearest multiple of 4, halves up
        (9, 1.0, {}, 8),  # 9 -> 8
        (100, 1.0, {"max_frames": 30}, 28),  # capped, max rounded down to a multiple of 4
        (2, 1.0, {"min_frames": 6}, 8),  # raised, min rounded up to a multiple of 4
        (0.2, 1.0, {}, 4),  # default min_frames = 4
    ],
)
def test_fps_counts_round_to_a_multiple_of_k_within_the_limits(seconds, fps, limits, expected_count):
    total = round(seconds * 30)
    indices = indices_for(total, fps=fps, **limits)
    assert len(indices) == expected_count
    assert indices == sorted(indices) and indices[-1] < total


def test_num_frames_and_fps_deliver_the_count_asked_for_repeating_frames_of_short_videos(
    video_processor, make_video, caplog
):
    logging.Logger.warning_once.cache_clear()  # transformers warns once per message per process
    got, metadata = sampled(video_processor, make_video(5), num_frames=8)
    assert got == metadata.frames_indices == [0, 0, 1, 2, 2, 3, 4, 4]
    assert "A video of 5 frames was sampled with num_frames=8, which asks for 8 frames: frames repeat" in caplog.text
    assert indices_for(6, k=4, num_frames=16) == [0, 0, 0, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 5, 5, 5]
    assert indices_for(3, k=4, fps=1.0) == [0, 1, 1, 2]  # min_frames 4 > 3 frames
    # fps above the video's own rate: every delivered frame still stands for 1 / fps seconds
    assert indices_for(16, k=4, video_fps=8.0, fps=16) == [i // 2 for i in range(32)]


def test_without_num_frames_or_fps_every_frame_up_to_max_frames(video_processor, make_video):
    got, _ = sampled(video_processor, make_video(30))
    assert got == list(range(30))
    got, _ = sampled(video_processor, make_video(300, gop_size=30), max_frames=10)
    assert got == [(2 * i + 1) * 300 // 20 for i in range(10)]


def test_do_sample_frames_false_keeps_every_frame(video_processor):
    got, metadata = sampled(video_processor, index_frames(7), do_sample_frames=False)
    assert got == metadata.frames_indices == [0, 1, 2, 3, 4, 5, 6, 6]


def test_fps_and_num_frames_together_is_an_error(video_processor, make_video):
    with pytest.raises(ValueError, match="Got both num_frames=8 and fps=1; pass only one"):
        video_processor(make_video(60), num_frames=8, fps=1)


def test_fps_sampling_of_frame_arrays_needs_their_frame_rate(video_processor):
    with pytest.raises(ValueError, match="Sampling by fps needs the video's frame rate"):
        video_processor(index_frames(60), fps=1)
    got, metadata = sampled(video_processor, index_frames(60), fps=4, video_metadata={"fps": 30.0})
    assert got == metadata.frames_indices == [int((j + 0.5) / 4 * 30) for j in range(8)]  # 2 s at 4 fps
    assert metadata.timestamps == pytest.approx([i / 30 for i in got])


@pytest.mark.parametrize("stride", [0, -1])
def test_temporal_sampling_stride_below_one_is_an_error(video_processor, stride):
    with pytest.raises(ValueError, match=f"temporal_sampling_stride must be an integer >= 1, got {stride}"):
        video_processor(index_frames(8), temporal_sampling_stride=stride)


# ----- inputs -----


@pytest.mark.parametrize(
    "kind",
    ["path", "pathlib", "bytes", "file object", "numpy THWC", "torch TCHW", "list of PIL", "list of arrays"],
)
def test_every_input_kind_gives_the_same_frames(video_processor, make_video, kind):
    path = make_video(60)
    frames = index_frames(60)
    video = {
        "path": str(path),
        "pathlib": path,
        "bytes": path.read_bytes(),
        "file object": io.BytesIO(path.read_bytes()),
        "numpy THWC": frames,
        "torch TCHW": torch.from_numpy(frames).permute(0, 3, 1, 2),
        "list of PIL": [PIL.Image.fromarray(frame) for frame in frames],
        "list of arrays": list(frames),
    }[kind]
    got, _ = sampled(video_processor, video, num_frames=6)
    assert got == [(2 * i + 1) * 60 // 12 for i in range(6)]


def test_a_batch_of_videos_of_different_lengths_is_zero_padded(video_processor, make_video):
    out = video_processor([make_video(300, gop_size=30), index_frames(5), [make_video(60)]], max_frames=8)
    assert out["pixel_values_videos"].shape == (3, 8, 3, 32, 32)
    assert out["video_frame_counts"].tolist() == [8, 6, 8]
    assert torch.all(out["pixel_values_videos"][1, 6:] == 0)
    single = video_processor(index_frames(5), max_frames=8)["pixel_values_videos"][0]
    torch.testing.assert_close(out["pixel_values_videos"][1, :6], single)


def test_frames_are_resized_rescaled_and_normalised(make_video):
    processor = StormVideoProcessor(**TINY_VIDEO_PROCESSOR)
    frames = np.full((2, 64, 48, 3), 255, dtype=np.uint8)
    frames[:, :, :, 1] = 0
    pixel_values = processor(frames)["pixel_values_videos"]
    assert pixel_values.shape == (1, 2, 3, 32, 32) and pixel_values.dtype == torch.float32
    torch.testing.assert_close(pixel_values[0, :, 0], torch.ones(2, 32, 32))  # 255 -> (1 - 0.5) / 0.5
    torch.testing.assert_close(pixel_values[0, :, 1], -torch.ones(2, 32, 32))  # 0 -> (0 - 0.5) / 0.5


def test_images_are_prepared_like_frames(video_processor, bad_files):
    frame = index_frames(3)[2]
    images = [PIL.Image.fromarray(frame), frame, str(bad_files["image"]), torch.from_numpy(frame).permute(2, 0, 1)]
    pixel_values = video_processor.preprocess_images(images)["pixel_values"]
    assert pixel_values.shape == (4, 3, 32, 32)
    assert pixel_indices(pixel_values) == [2, 2, 0, 2]


# ----- saved geometry and token counts -----


def test_defaults_and_config_round_trip(tmp_path):
    processor = StormVideoProcessor()
    config = processor.to_dict()
    assert {key: config[key] for key in ("patch_size", "downsample", "spatial_pool_size", "temporal_pool_size")} == {
        "patch_size": 14, "downsample": 2, "spatial_pool_size": 1, "temporal_pool_size": 4
    }
    assert config["size"] == {"height": 448, "width": 448} and config["temporal_sampling_stride"] == 1
    assert tuple(config["image_mean"]) == tuple(config["image_std"]) == (0.5, 0.5, 0.5)
    assert config["resample"] == PIL.Image.Resampling.BICUBIC and config["rescale_factor"] == 1 / 255
    assert config.get("num_frames") is None and config.get("fps") is None
    assert processor.tokens_per_frame == 256

    custom = StormVideoProcessor(**TINY_VIDEO_PROCESSOR, spatial_pool_size=2, temporal_sampling_stride=2)
    custom.save_pretrained(tmp_path)
    loaded = StormVideoProcessor.from_pretrained(tmp_path)
    assert loaded.to_dict() == custom.to_dict()
    assert (loaded.spatial_pool_size, loaded.temporal_sampling_stride, loaded.tokens_per_frame) == (2, 2, 1)


@pytest.mark.parametrize(
    "geometry, frames, stride, expected",
    [
        ({}, 32, None, 8 * 256),  # 448 px / 14 -> 32x32 -> 16x16; 32 frames / k=4 = 8 slots
        ({}, 128, 2, 16 * 256),  # s=2 keeps slots 0, 2, ..., 30
        ({"temporal_pool_size": 4, "spatial_pool_size": 2}, 32, 2, 4 * 64),  # the paper's 3.13% setting
        ({"temporal_pool_size": 4}, 20, 2, 3 * 256),  # 5 slots, stride 2 keeps 0, 2, 4
        ({"size": {"height": 56, "width": 56}, "patch_size": 8}, 8, None, 2 * 16),  # odd 7x7 grid -> 4x4
        ({"size": {"height": 56, "width": 56}, "patch_size": 8, "spatial_pool_size": 3}, 8, 3, 1 * 4),  # 4x4 -> 2x2
        ({"size": {"height": 32, "width": 64}, "patch_size": 8, "temporal_pool_size": 1}, 3, None, 3 * 8),
    ],
)
def test_token_counts(geometry, frames, stride, expected):
    assert StormVideoProcessor(**geometry).num_video_tokens(frames, stride) == expected


def test_token_count_refuses_what_the_model_cannot_use():
    processor = StormVideoProcessor()
    with pytest.raises(ValueError, match="must have a positive multiple of temporal_pool_size=4 frames, got 6"):
        processor.num_video_tokens(6)
    with pytest.raises(ValueError, match="temporal_sampling_stride must be an integer >= 1, got 0"):
        processor.num_video_tokens(8, 0)
    with pytest.raises(ValueError, match="temporal_pool_size must be an integer >= 1, got 0"):
        StormVideoProcessor(temporal_pool_size=0)


# ----- token budget -----


@pytest.mark.parametrize(
    "frames, budget, stride",
    [
        (16, 16, 1),  # 4 slots of 4 tokens: the budget is met without sampling
        (32, 16, 2),  # 8 slots -> 4
        (64, 16, 4),
        (128, 16, 8),
        (64, 19, 4),  # a budget between two counts rounds down to whole slots
        (48, 16, 3),  # 12 slots: s = 3 keeps 0, 3, 6, 9 (no stride needs to divide the slots)
        (64, 4, 16),  # one slot: the fewest tokens a video can give
        (64, 1000, 1),
    ],
)
def test_a_budget_picks_the_smallest_stride_that_fits(frames, budget, stride):
    processor = StormVideoProcessor(size={"height": 32, "width": 32}, patch_size=8, temporal_pool_size=4)
    assert processor.stride_for_budget(frames, budget) == stride
    assert processor.num_video_tokens(frames, stride) <= budget
    if stride > 1:
        assert processor.num_video_tokens(frames, stride - 1) > budget


def test_max_video_tokens_returns_the_chosen_stride_and_counts(video_processor, make_video):
    # k = 2, 4 tokens per slot: 16 frames are 8 slots = 32 tokens; a budget of 10 fits 2 slots, at s = 4
    out = video_processor(make_video(60), num_frames=16, max_video_tokens=10, return_metadata=True)
    assert out["temporal_sampling_stride"] == 4 and type(out["temporal_sampling_stride"]) is int
    metadata = out["video_metadata"][0]
    assert (metadata.temporal_sampling_stride, metadata.num_video_tokens) == (4, 8)
    # without a budget nothing is chosen; the metadata still says what the video gives at the default stride
    plain = video_processor(make_video(60), num_frames=16, return_metadata=True)
    assert "temporal_sampling_stride" not in plain
    assert (plain["video_metadata"][0].temporal_sampling_stride, plain["video_metadata"][0].num_video_tokens) == (1, 32)


def test_an_explicit_stride_wins_over_the_budget(video_processor):
    out = video_processor(
        index_frames(16), num_frames=16, max_video_tokens=8, temporal_sampling_stride=2, return_metadata=True
    )
    assert "temporal_sampling_stride" not in out  # the caller's own stride: nothing was chosen
    assert out["video_metadata"][0].num_video_tokens == 16  # over the budget, as the caller asked


def test_a_batch_shares_the_stride_its_longest_video_needs(video_processor, make_video):
    # fps sampling: 60 frames at 30 fps -> 2 s -> 8 frames at 4 fps; 300 frames -> 10 s -> 40 frames
    out = video_processor(
        [make_video(60), make_video(300, gop_size=30)], fps=4, max_video_tokens=8, return_metadata=True
    )
    assert out["video_frame_counts"].tolist() == [8, 40]
    assert out["temporal_sampling_stride"] == 10  # 20 slots -> 2; the short video's 4 slots would need only 2
    assert [m.num_video_tokens for m in out["video_metadata"]] == [4, 8]


def test_an_impossible_budget_names_the_least_it_can_do(video_processor):
    with pytest.raises(ValueError, match=re.escape("max_video_tokens=3 is below the fewest video tokens this model "
                                                   "gives a video: 4, one temporal slot (temporal_sampling_stride=8 "
                                                   "for 16 frames). Pass max_video_tokens >= 4.")):
        video_processor(index_frames(16), num_frames=16, max_video_tokens=3)
    with pytest.raises(ValueError, match="max_video_tokens must be an integer >= 1, got 0"):
        video_processor(index_frames(16), num_frames=16, max_video_tokens=0)


def test_a_saved_budget_is_the_default(tmp_path):
    processor = StormVideoProcessor(**TINY_VIDEO_PROCESSOR, max_video_tokens=8)
    processor.save_pretrained(tmp_path)
    loaded = StormVideoProcessor.from_pretrained(tmp_path)
    assert loaded.max_video_tokens == 8
    assert loaded(index_frames(16), num_frames=16)["temporal_sampling_stride"] == 4
    assert "temporal_sampling_stride" not in loaded(index_frames(16), num_frames=16, max_video_tokens=None)
