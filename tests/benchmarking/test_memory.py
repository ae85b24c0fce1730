"""The memory probe, and the model's memory cuts: no copy of the clip's pixels or features on the way to the
temporal encoder, and chunked vision encoding equal to unchunked."""

import pytest
import torch

from storm_hf.benchmarking.memory import MemoryProbe, reset_peak_rss
from storm_hf.benchmarking.scales import SCALES, SETTINGS, build_config
from storm_hf.modeling.modeling_storm import StormModel

MIB = 2**20


def test_a_stage_peak_counts_what_it_allocated():
    probe = MemoryProbe(torch.device("cpu"))
    block = torch.ones(64 * MIB // 4)  # 64 MiB, every page written
    del block
    start, peak = probe.mark()
    assert peak - start >= 60 * MIB


def test_each_interval_has_its_own_peak():
    if not reset_peak_rss():
        pytest.skip("this process cannot write /proc/self/clear_refs, so its peak memory cannot be restarted")
    probe = MemoryProbe(torch.device("cpu"))
    block = torch.ones(64 * MIB // 4)
    del block
    probe.mark()
    start, peak = probe.mark()  # nothing allocated in this interval
    assert peak - start < 16 * MIB


def tiny_model(vision_chunk_size: int = 32) -> StormModel:
    config = build_config(SCALES["tiny"], SETTINGS["k4"])
    config.vision_chunk_size = vision_chunk_size
    torch.manual_seed(0)
    return StormModel(config).eval()


def test_an_unpadded_clip_reaches_the_vision_tower_and_the_temporal_encoder_without_copies(monkeypatch):
    model = tiny_model()
    seen = {}
    encode_frames = model._encode_frames

    def spy_frames(frames):
        seen["frames"] = frames
        seen["features"] = encode_frames(frames)
        return seen["features"]

    monkeypatch.setattr(model, "_encode_frames", spy_frames)
    model.temporal_encoder.register_forward_pre_hook(lambda _, args: seen.update(grid=args[0]))
    pixels = torch.randn(2, 8, 3, 32, 32)
    with torch.no_grad():
        model.get_video_features(pixels)
    assert seen["frames"].data_ptr() == pixels.data_ptr()  # (N*T, 3, H, W), a view
    assert seen["grid"].data_ptr() == seen["features"].data_ptr()  # (N, T, G, G, C), a view


@pytest.mark.parametrize("chunk", [1, 3, 8, 64])
def test_chunked_vision_encoding_equals_unchunked(chunk):
    whole, chunked = tiny_model(64), tiny_model(chunk)
    chunked.load_state_dict(whole.state_dict())
    pixels = torch.randn(2, 12, 3, 32, 32)
    counts = torch.tensor([12, 8])  # a padded batch: 20 frames, not a multiple of most chunk sizes
    with torch.no_grad():
        frames_whole, frames_chunked = whole._encode_frames(pixels[0]), chunked._encode_frames(pixels[0])  # (12, G, G, C)
        expected = whole.get_video_features(pixels, counts).pooler_output
        got = chunked.get_video_features(pixels, counts).pooler_output
    torch.testing.assert_close(frames_chunked, frames_whole, rtol=1e-5, atol=1e-6)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
