"""The `storm` video loader keeps fetched videos encoded for StormVideoProcessor and refuses frame settings that
belong in mm_processor_kwargs."""

import pytest
from vllm_testing import require_vllm

require_vllm()

from storm_hf.vllm.video_loader import BACKEND, DeferredVideo, StormVideoLoader  # noqa: E402


def test_a_fetched_video_stays_encoded(videos):
    frames, metadata = StormVideoLoader.load_bytes(videos["red"].read_bytes())
    assert isinstance(frames, DeferredVideo)
    assert metadata == {"video_backend": BACKEND}


@pytest.mark.parametrize("settings", [{"fps": 2}, {"num_frames": 8}, {"max_duration": 10}])
def test_frame_settings_in_media_io_kwargs_are_refused(videos, settings):
    with pytest.raises(ValueError, match=rf"media_io_kwargs \['{next(iter(settings))}'\] are not used.*mm_processor_kwargs"):
        StormVideoLoader.load_bytes(videos["red"].read_bytes(), **settings)


def test_the_plugin_makes_it_the_video_loader_of_storm(storm_folder):
    from vllm.config import ModelConfig, VllmConfig
    from vllm.multimodal.video import VIDEO_LOADER_REGISTRY

    from storm_hf.vllm import register

    register()
    assert isinstance(VIDEO_LOADER_REGISTRY.load(BACKEND), StormVideoLoader)
    vllm_config = VllmConfig(model_config=ModelConfig(model=str(storm_folder), max_model_len=512))
    assert vllm_config.model_config.multimodal_config.media_io_kwargs["video"]["video_backend"] == BACKEND
