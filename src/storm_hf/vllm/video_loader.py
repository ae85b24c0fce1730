"""The `storm` video loader: video files stay encoded until the STORM processor decodes them.

vLLM's chat front end fetches each `video_url` and hands its bytes to a video loader before the model's processor
runs; vLLM's own loaders decode a fixed number of frames with their own sampling. STORM chooses its frames in
`StormVideoProcessor` (exact frames by PyAV; `num_frames`, `fps`, `min_frames`, `max_frames` and
`temporal_sampling_stride` per request through `mm_processor_kwargs`), so this loader decodes nothing: it returns a
`DeferredVideo`, vLLM keeps the original bytes beside it, and the STORM data parser gives those bytes to the
processor. A configuration hook makes it the video loader of STORM checkpoints;
`--media-io-kwargs '{"video": {"video_backend": NAME}}'` still chooses another one.
"""

import inspect

from vllm.model_executor.models.config import MODELS_CONFIG_MAP, VerifyAndUpdateConfig
from vllm.multimodal.media import VideoMediaIO
from vllm.multimodal.video import VIDEO_LOADER_REGISTRY, VideoLoader

BACKEND = "storm"
# The frame count vLLM passes to every loader when the request names none.
_DEFAULT_NUM_FRAMES = inspect.signature(VideoMediaIO.__init__).parameters["num_frames"].default


class DeferredVideo:
    """Stands where decoded frames would: the video is still encoded, its bytes travel beside it."""


class StormVideoLoader(VideoLoader):
    @classmethod
    def load_bytes(cls, data: bytes, num_frames: int = _DEFAULT_NUM_FRAMES, **kwargs) -> tuple[DeferredVideo, dict]:
        settings = {**kwargs, "num_frames": num_frames} if num_frames != _DEFAULT_NUM_FRAMES else kwargs
        if settings:
            raise ValueError(
                f"STORM chooses video frames in its processor; media_io_kwargs {sorted(settings)} are not used. Pass "
                "num_frames, fps, min_frames, max_frames or temporal_sampling_stride in mm_processor_kwargs instead."
            )
        return DeferredVideo(), {"video_backend": BACKEND}


class StormConfigHook(VerifyAndUpdateConfig):
    @staticmethod
    def verify_and_update_config(vllm_config) -> None:
        mm_config = vllm_config.model_config.multimodal_config
        if mm_config is not None:
            mm_config.media_io_kwargs.setdefault("video", {}).setdefault("video_backend", BACKEND)


def register_video_loader(architecture: str) -> None:
    """Register the `storm` loader and make it the default video loader of `architecture`."""
    VIDEO_LOADER_REGISTRY.register(BACKEND, video_processor="StormVideoProcessor")(StormVideoLoader)
    MODELS_CONFIG_MAP.setdefault(architecture, StormConfigHook)
