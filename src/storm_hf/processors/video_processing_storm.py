"""StormVideoProcessor: videos (files, bytes, arrays, frame lists, image files) and images to STORM's pixel inputs.

Frame sampling and the multiple-of-k rule (k = `temporal_pool_size`, the frames the model averages into one slot):

- `num_frames=N`: exactly N frames, spread uniformly over the whole video (the middle frame of each of N equal
  segments). N must be a multiple of k; otherwise the error names the nearest valid values.
- `fps=F` (F > 0): F frames per second of video, `duration * F` rounded to the nearest multiple of k (halves round
  up) and kept within [`min_frames`, `max_frames`] (each rounded inwards to a multiple of k). Frames are picked by
  time: the frame on screen at the middle of each equal time segment, exact for variable-frame-rate videos. Every
  delivered frame then stands for the same stretch of time (each temporal slot for k / F seconds), whatever the
  video's own frame rate.
- `num_frames` or `fps` asking for more frames than the video has (a short clip, or F above the video's frame rate)
  still delivers the count asked for: frames repeat, in time order, and a warning says so. The metadata's
  `frames_indices` lists every delivered frame, repeats included.
- neither: every frame, or `max_frames` spread uniformly when the video is longer.
- Whenever the count is not a multiple of k (every frame of a video, `do_sample_frames=False`), the last frame is
  repeated up to the next multiple of k.

A video given as a list of image files (paths or URLs of its frames, e.g. `{"type": "video", "path": [...]}` in a
chat) is one video, as in transformers: a list of paths counts as one video where one video goes inside a batch of
per-sample lists (`[[["f0.png", "f1.png", ...]]]`, as chat templates pass it); at the top level a list of paths is a
batch of video files. Only the sampled frames are read.

A token budget, `max_video_tokens=N`: after sampling, the processor picks the smallest temporal sampling stride s
whose video tokens fit N (one stride for a batch, the one its longest video needs) and returns it as
`temporal_sampling_stride` (an int), so the model samples the slots the placeholders were counted for. Only the
stride changes: spatial pooling is part of what the model learned, so a budget never changes it. An explicit
`temporal_sampling_stride` wins over a budget.

Streams: `stream_frames` decodes a source frame by frame as it arrives, `preprocess_frames` prepares any number of
a stream's frames exactly as a video's (what `StormStreamingSession` uses).

Hub code: imports only the standard library, numpy, torch, PIL, transformers' public API and its sibling modules.
"""

import contextvars
import math
import os
from dataclasses import dataclass

import numpy as np
import PIL.Image
import torch
from transformers import BaseVideoProcessor, BatchFeature
from transformers.image_utils import PILImageResampling, load_image
from transformers.processing_utils import Unpack, VideosKwargs
from transformers.utils import logging
from transformers.video_utils import VideoMetadata, is_valid_video, is_valid_video_frame

from .video_decoding import URL_TIMEOUT, VideoReader, is_video_source
from .video_stream import iter_frames

logger = logging.get_logger(__name__)

# The download timeout of the `preprocess` call in progress, for videos given as URLs (`StormVideosKwargs.timeout`).
_url_timeout = contextvars.ContextVar("storm_url_timeout", default=URL_TIMEOUT)


class StormVideosKwargs(VideosKwargs, total=False):
    r"""
    min_frames (`int`, *optional*, defaults to 4):
        Fewest frames `fps` sampling delivers (rounded up to a multiple of `temporal_pool_size`).
    max_frames (`int`, *optional*, defaults to 256):
        Most frames `fps` sampling, or sampling with neither `fps` nor `num_frames`, delivers.
    temporal_sampling_stride (`int`, *optional*, defaults to 1):
        Test-time temporal sampling: the model keeps temporal slots 0, s, 2s, ... Changes the number of video tokens,
        not the pixels.
    max_video_tokens (`int`, *optional*):
        Token budget per video (frame separators not counted): the smallest `temporal_sampling_stride` whose tokens
        fit it is chosen for the frames sampled, and returned. Ignored when `temporal_sampling_stride` is given.
    timeout (`float`, *optional*, defaults to `URL_TIMEOUT` = 30):
        Seconds a server may stay silent while a video given as an http(s) URL downloads.
    """

    min_frames: int
    max_frames: int
    temporal_sampling_stride: int
    max_video_tokens: int | None
    timeout: int | float | None


@dataclass
class StormVideoMetadata(VideoMetadata):
    """`VideoMetadata` that knows when each frame is shown, so `timestamps` are exact at variable frame rates.

    `frame_times` (total_num_frames,): seconds from the first frame to each frame; None for frame arrays, whose
    timestamps come from `fps`. `temporal_sampling_stride` and `num_video_tokens`: the stride the video is counted at
    (chosen by `max_video_tokens`, given, or the processor's default) and the video tokens it gives the model.
    """

    frame_times: np.ndarray | None = None
    temporal_sampling_stride: int | None = None
    num_video_tokens: int | None = None

    @property
    def timestamps(self) -> list[float]:
        if self.frame_times is None:
            return super().timestamps
        return [float(self.frame_times[index]) for index in self.frames_indices]


def _require_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def pad_to_multiple(indices: np.ndarray, multiple: int) -> np.ndarray:
    """Repeat the last index until the count is a multiple of `multiple`."""
    missing = -len(indices) % multiple
    return np.concatenate([indices, np.full(missing, indices[-1], dtype=indices.dtype)])


def _is_frame_file_list(value) -> bool:
    return isinstance(value, (list, tuple)) and len(value) > 0 and all(isinstance(v, (str, os.PathLike)) for v in value)


def make_video_list(videos, _depth: int = 0) -> list:
    """One video or a batch (nested lists allowed, as chat templates build them) as a flat list of videos.

    A video is a source (path, URL, bytes, binary file object), frames (a (T, H, W, C) / (T, C, H, W) array or
    tensor, or a list of PIL images or (H, W, C) arrays), or a list of image files (its frames' paths or URLs) where
    one video goes inside a batch of per-sample lists (depth 2, as `apply_chat_template` passes videos).
    """
    if is_video_source(videos) or is_valid_video(videos):
        return [videos]
    if is_valid_video_frame(videos):
        return [[videos]]
    if isinstance(videos, (np.ndarray, torch.Tensor)) and videos.ndim == 5:
        return list(videos)
    if _depth >= 2 and _is_frame_file_list(videos):
        return [list(videos)]
    if isinstance(videos, (list, tuple)):
        return [video for item in videos for video in make_video_list(item, _depth + 1)]
    raise TypeError(
        f"Cannot read a video from a {type(videos).__name__}. Pass a file path or URL, bytes, a binary file object, "
        "a (T, H, W, 3) array or tensor, or a list of frames (PIL images or (H, W, 3) arrays)."
    )


def make_image_list(images) -> list:
    """One image or a batch (nested lists allowed) as a flat list of images."""
    if isinstance(images, (list, tuple)):
        return [image for item in images for image in make_image_list(item)]
    if isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim == 4:
        return list(images)
    return [images]


def _metadata_list(video_metadata, num_videos: int) -> list:
    """What callers say about frame-array videos (`fps`, `duration`): one mapping per video, empty when unknown."""
    if video_metadata is None:
        return [{}] * num_videos
    if not isinstance(video_metadata, (list, tuple)):
        video_metadata = [video_metadata]
    flat = [entry for item in video_metadata for entry in (item if isinstance(item, (list, tuple)) else [item])]
    if len(flat) != num_videos:
        raise ValueError(f"Got {num_videos} videos but {len(flat)} video_metadata entries; pass one per video.")
    return [entry or {} for entry in flat]


def _stack_frames(video) -> np.ndarray | torch.Tensor:
    """Frames as one 4-D array or tensor, (T, H, W, C) or (T, C, H, W)."""
    if not isinstance(video, (list, tuple)):
        return video
    frames = [np.asarray(frame.convert("RGB")) if isinstance(frame, PIL.Image.Image) else frame for frame in video]
    return torch.stack(frames) if isinstance(frames[0], torch.Tensor) else np.stack([np.asarray(f) for f in frames])


def _image_array(image) -> np.ndarray | torch.Tensor:
    """An image (PIL, path, URL, (H, W, C) / (C, H, W) array or tensor) as a one-frame video."""
    if isinstance(image, str):
        image = load_image(image)
    if isinstance(image, PIL.Image.Image):
        image = np.array(image.convert("RGB"))
    if not isinstance(image, (np.ndarray, torch.Tensor)) or image.ndim != 3:
        raise TypeError(
            f"Cannot read an image from {type(image).__name__}: pass a PIL image, a path or URL, or an (H, W, 3) array."
        )
    return image[None]


def _read_file(source, given: dict, sample_indices_fn) -> tuple[np.ndarray, StormVideoMetadata]:
    """Decode only the sampled frames of a video file: (T, H, W, 3) uint8. `given` metadata is not needed."""
    with VideoReader(source, timeout=_url_timeout.get()) as reader:
        index = reader.index
        metadata = StormVideoMetadata(
            total_num_frames=index.num_frames,
            fps=index.fps,
            width=index.width,
            height=index.height,
            duration=index.duration,
            video_backend="pyav",
            frame_times=index.frame_times,
        )
        indices = sample_indices_fn(metadata=metadata)
        metadata.frames_indices = indices.tolist()
        frames = reader.read(indices)  # (T, H, W, 3) as displayed: a rotation may swap the stored width and height
        metadata.height, metadata.width = frames.shape[1:3]
        return frames, metadata


def _take_frames(video, given: dict, sample_indices_fn) -> tuple[np.ndarray | torch.Tensor, StormVideoMetadata]:
    """The sampled frames of a video given as frames or image files; `given` may hold its `fps` and `duration`."""
    frame_files = _is_frame_file_list(video)
    frames = video if frame_files else _stack_frames(video)
    if not frame_files and (frames.ndim != 4 or len(frames) == 0):
        raise ValueError(f"A video given as frames must be 4-D (T, H, W, C), got shape {tuple(frames.shape)}.")
    fps = given.get("fps")
    duration = given.get("duration") or (len(frames) / fps if fps else None)
    metadata = StormVideoMetadata(total_num_frames=len(frames), fps=fps, duration=duration)
    indices = sample_indices_fn(metadata=metadata)
    metadata.frames_indices = indices.tolist()
    if frame_files:
        return _read_frame_files(frames, indices), metadata
    return frames[torch.from_numpy(indices) if isinstance(frames, torch.Tensor) else indices], metadata


def _read_frame_files(files: list, indices: np.ndarray) -> np.ndarray:
    """(len(indices), H, W, 3) uint8: the image files at `indices`, each read once."""
    read = {}
    for index in dict.fromkeys(indices.tolist()):
        try:
            read[index] = np.array(load_image(os.fspath(files[index]), timeout=_url_timeout.get()).convert("RGB"))
        except (OSError, ValueError) as error:
            raise ValueError(
                f"Frame {index} of a video given as image files, {files[index]!r}, is not a readable image: {error}"
            ) from error
    return np.stack([read[index] for index in indices.tolist()])


def concatenate_videos(videos: list[torch.Tensor]) -> torch.Tensor:
    """[(n_i, T_i, C, H, W)] -> (sum n_i, max T_i, C, H, W), zeros after each video's frames."""
    frames = max(video.shape[1] for video in videos)
    out = videos[0].new_zeros(sum(video.shape[0] for video in videos), frames, *videos[0].shape[2:])
    start = 0
    for video in videos:
        out[start : start + video.shape[0], : video.shape[1]] = video
        start += video.shape[0]
    return out


class StormVideoProcessor(BaseVideoProcessor):
    r"""
    Turns videos into `pixel_values_videos` (num_videos, T_max, 3, H, W), zero-padded along T, and
    `video_frame_counts` (num_videos,); images into `pixel_values` (num_images, 3, H, W) (`preprocess_images`).

    Frames are resized to `size` (SigLIP's bicubic), rescaled by 1/255 and normalised with SigLIP's mean and std.
    Video files are decoded with PyAV, only the sampled frames (see the module docstring for the sampling rules).

    The model's shape, saved with the processor so it can count tokens without the model:

    Args:
        patch_size (`int`, defaults to 14): the vision tower's patch side in pixels.
        downsample (`int`, defaults to 2): side of the space-to-channel window after the vision tower.
        spatial_pool_size (`int`, defaults to 1): side of the spatial average-pooling window.
        temporal_pool_size (`int`, defaults to 4): frames averaged into one temporal slot (k); every video is
            delivered with a multiple of k frames.
    """

    resample = PILImageResampling.BICUBIC
    size = {"height": 448, "width": 448}
    image_mean = [0.5, 0.5, 0.5]
    image_std = [0.5, 0.5, 0.5]
    rescale_factor = 1 / 255
    do_resize = True
    do_rescale = True
    do_normalize = True
    do_convert_rgb = True
    do_sample_frames = True
    min_frames = 4
    max_frames = 256
    temporal_sampling_stride = 1
    max_video_tokens = None
    valid_kwargs = StormVideosKwargs
    model_input_names = ["pixel_values_videos", "video_frame_counts"]

    def __init__(
        self,
        patch_size: int = 14,
        downsample: int = 2,
        spatial_pool_size: int = 1,
        temporal_pool_size: int = 4,
        **kwargs: Unpack[StormVideosKwargs],
    ):
        super().__init__(**kwargs)
        self.patch_size = _require_int("patch_size", patch_size)
        self.downsample = _require_int("downsample", downsample)
        self.spatial_pool_size = _require_int("spatial_pool_size", spatial_pool_size)
        self.temporal_pool_size = _require_int("temporal_pool_size", temporal_pool_size)
        _require_int("temporal_sampling_stride", self.temporal_sampling_stride)
        if self.max_video_tokens is not None:
            _require_int("max_video_tokens", self.max_video_tokens)

    # ----- token counts (the contract with the model) -----

    @property
    def tokens_per_frame(self) -> int:
        """Video (or image) tokens per temporal slot: the vision grid after downsampling and spatial pooling."""
        sides = (self.size.height // self.patch_size, self.size.width // self.patch_size)
        return math.prod(math.ceil(math.ceil(side / self.downsample) / self.spatial_pool_size) for side in sides)

    def num_video_slots(self, num_frames: int, temporal_sampling_stride: int | None = None) -> int:
        """Temporal slots the model keeps for `num_frames` frames: ceil((T / k) / s)."""
        stride = _require_int(
            "temporal_sampling_stride",
            self.temporal_sampling_stride if temporal_sampling_stride is None else temporal_sampling_stride,
        )
        if num_frames < 1 or num_frames % self.temporal_pool_size:
            raise ValueError(
                f"A video must have a positive multiple of temporal_pool_size={self.temporal_pool_size} frames, "
                f"got {num_frames}."
            )
        return math.ceil(num_frames // self.temporal_pool_size / stride)

    def num_video_tokens(self, num_frames: int, temporal_sampling_stride: int | None = None) -> int:
        """Video tokens (model features) for a video of `num_frames` frames, frame separators not included."""
        return self.num_video_slots(num_frames, temporal_sampling_stride) * self.tokens_per_frame

    def stride_for_budget(self, num_frames: int, max_video_tokens: int) -> int:
        """The smallest temporal sampling stride at which `num_frames` frames give at most `max_video_tokens` video
        tokens. The fewest a video can give is one temporal slot (`tokens_per_frame`); a smaller budget is an error."""
        budget = _require_int("max_video_tokens", max_video_tokens)
        slots = self.num_video_slots(num_frames, 1)
        if budget < self.tokens_per_frame:
            raise ValueError(
                f"max_video_tokens={budget} is below the fewest video tokens this model gives a video: "
                f"{self.tokens_per_frame}, one temporal slot (temporal_sampling_stride={slots} for {num_frames} "
                f"frames). Pass max_video_tokens >= {self.tokens_per_frame}. The spatial pooling "
                f"(spatial_pool_size={self.spatial_pool_size}) is what the model was trained with and is not changed "
                "to meet a budget."
            )
        # ceil(slots / s) <= budget // tokens_per_frame  <=>  s >= slots / (budget // tokens_per_frame)
        return math.ceil(slots / (budget // self.tokens_per_frame))

    # ----- sampling -----

    def sample_frames(
        self,
        metadata: VideoMetadata,
        num_frames: int | None = None,
        fps: int | float | None = None,
        min_frames: int | None = None,
        max_frames: int | None = None,
        **kwargs,
    ) -> np.ndarray:
        """Indices of the frames to deliver, in order; their count is a multiple of `temporal_pool_size`."""
        multiple = self.temporal_pool_size
        total = metadata.total_num_frames
        max_frames = _require_int("max_frames", self.max_frames if max_frames is None else max_frames, multiple)
        min_frames = _require_int("min_frames", self.min_frames if min_frames is None else min_frames)
        if num_frames is not None and fps is not None:
            raise ValueError(
                f"Got both num_frames={num_frames} and fps={fps}; pass only one: num_frames for a fixed count, or "
                "fps (with max_frames / min_frames) for a count that follows the video's length."
            )
        if num_frames is not None:
            count = _require_int("num_frames", num_frames)
            if count % multiple:
                lower = count // multiple * multiple
                nearest = " or ".join(str(n) for n in (lower, lower + multiple) if n > 0)
                raise ValueError(
                    f"num_frames={count} is not a multiple of the model's temporal pool size {multiple}; use {nearest}."
                )
        elif fps is not None:
            if isinstance(fps, bool) or not isinstance(fps, (int, float, np.number)) or not 0 < fps < math.inf:
                raise ValueError(
                    f"fps must be a positive number of frames per second of video, got {fps!r}; to take every "
                    "frame, pass neither fps nor num_frames (up to max_frames)."
                )
            duration = metadata.duration or (total / metadata.fps if metadata.fps else None)
            if not duration:
                raise ValueError(
                    "Sampling by fps needs the video's frame rate: pass `video_metadata={'fps': ...}` with frame "
                    "arrays, or sample with num_frames instead."
                )
            count = multiple * math.floor(duration * fps / multiple + 0.5)
            count = min(max(count, multiple * math.ceil(min_frames / multiple)), max_frames // multiple * multiple)
        else:
            count = min(total, max_frames // multiple * multiple)
        if count > total:
            asked = f"num_frames={num_frames}" if num_frames is not None else f"fps={fps} (min_frames={min_frames})"
            logger.warning_once(
                f"A video of {total} frames was sampled with {asked}, which asks for {count} frames: frames repeat "
                "to deliver that many (the metadata's frames_indices lists them)."
            )
        if fps is not None:
            # The frame on screen at the middle of each of `count` equal time segments.
            frame_times = getattr(metadata, "frame_times", None)
            if frame_times is None:
                frame_times = np.arange(total) * (duration / total)
            times = (np.arange(count) + 0.5) * (duration / count)
            indices = np.searchsorted(frame_times, times, side="right") - 1
        else:
            # The middle frame of each of `count` equal segments (every frame when count == total).
            indices = (2 * np.arange(count) + 1) * total // (2 * count)
        return pad_to_multiple(indices.astype(np.int64), multiple)

    def _decode_and_sample_videos(self, videos, video_metadata=None, do_sample_frames=None, sample_indices_fn=None):
        """Decode (files) or gather (frame arrays) the sampled frames of every video, with their metadata."""
        videos = make_video_list(videos)
        if not videos:
            raise ValueError("Got no video: pass a file path, bytes, a file object, a frame array, or a list of those.")
        given_metadata = _metadata_list(video_metadata, len(videos))
        if sample_indices_fn is None:  # do_sample_frames=False: every frame, padded to a multiple of k

            def sample_indices_fn(metadata):
                return pad_to_multiple(np.arange(metadata.total_num_frames), self.temporal_pool_size)

        clips, metadata_list = [], []
        for video, given in zip(videos, given_metadata):
            read = _read_file if is_video_source(video) else _take_frames
            frames, metadata = read(video, given, sample_indices_fn)
            clips.append(frames)
            metadata_list.append(metadata)
        return clips, metadata_list

    # ----- pixels -----

    def preprocess(self, videos, **kwargs: Unpack[StormVideosKwargs]) -> BatchFeature:
        if kwargs.get("temporal_sampling_stride") is not None:
            kwargs["max_video_tokens"] = None  # an explicit stride wins over a token budget
        # transformers' preprocess calls the decoding without this call's keywords: the URL timeout goes around it
        timeout = _url_timeout.set(kwargs.pop("timeout", None) or URL_TIMEOUT)
        try:
            output = super().preprocess(videos, **kwargs)
        finally:
            _url_timeout.reset(timeout)
        stride = output.get("temporal_sampling_stride") or kwargs.get("temporal_sampling_stride")
        stride = stride or self.temporal_sampling_stride
        for metadata, count in zip(output.get("video_metadata") or [], output["video_frame_counts"].tolist()):
            metadata.temporal_sampling_stride = stride
            metadata.num_video_tokens = self.num_video_tokens(count, stride)
        return output

    def _prepare_input_videos(self, videos, input_data_format=None, **kwargs) -> list[torch.Tensor]:
        """Each video to a (T, C, H, W) tensor, its channel layout inferred on its own (batches may mix layouts)."""
        prepare = super()._prepare_input_videos
        return [prepare([video], input_data_format=input_data_format, **kwargs)[0] for video in videos]

    def _preprocess(
        self,
        videos: list[torch.Tensor],
        do_resize: bool,
        size,
        resample,
        do_rescale: bool,
        rescale_factor: float,
        do_normalize: bool,
        image_mean,
        image_std,
        temporal_sampling_stride: int | None = None,
        max_video_tokens: int | None = None,
        return_tensors=None,
        **kwargs,
    ) -> BatchFeature:
        """(T_i, C, h, w) uint8 clips -> resized, normalised, zero-padded along T into one batch; with a token budget,
        also the stride chosen for it."""
        _require_int("temporal_sampling_stride", temporal_sampling_stride)
        chosen = {}
        if max_video_tokens is not None:  # the batch shares one stride: the one its longest video needs
            chosen["temporal_sampling_stride"] = max(self.stride_for_budget(len(v), max_video_tokens) for v in videos)
        clips = []
        for video in videos:
            if do_resize:
                video = self.resize(video, size=size, resample=resample)
            video = self.rescale_and_normalize(video, do_rescale, rescale_factor, do_normalize, image_mean, image_std)
            clips.append(video)  # (T_i, 3, H, W)
        if len({clip.shape[1:] for clip in clips}) > 1:
            raise ValueError(
                f"Videos in one batch must share a frame size, got {[tuple(c.shape[-2:]) for c in clips]}; keep "
                "do_resize=True."
            )
        counts = torch.tensor([len(clip) for clip in clips])
        pixel_values = concatenate_videos([clip[None] for clip in clips])  # (N, T_max, 3, H, W)
        return BatchFeature(
            data={"pixel_values_videos": pixel_values, "video_frame_counts": counts, **chosen},
            tensor_type=return_tensors,
            skip_tensor_conversion=["temporal_sampling_stride"],
        )

    # ----- streams -----

    def preprocess_frames(self, frames) -> torch.Tensor:
        """The next frames of a stream (a list of frames, or a (T, ...) array or tensor) as pixel values (T, 3, H, W),
        prepared exactly as a video's frames are, without sampling or padding."""
        pixels = self(videos=[frames], do_sample_frames=False, return_tensors="pt")["pixel_values_videos"][0]
        return pixels[: len(frames)]  # (T, 3, H, W): the clip without the copies padding it to a multiple of k

    def stream_frames(self, source, *, keep=None, follow: bool = False, poll_interval: float = 0.05,
                      idle_timeout: float = 5.0):
        """Yield `(frame, seconds)` for each frame of a video source as it is decoded: RGB (H, W, 3) uint8 and its time
        from the first frame. `source`: a path (with `follow=True`, a file still being written, read until no data has
        arrived for `idle_timeout` seconds), an http(s) or stream URL (rtsp://, srt://, ...), bytes or a file object.
        `keep(seconds)`, if given, chooses the frames to convert (the others are only decoded)."""
        return iter_frames(source, keep=keep, follow=follow, poll_interval=poll_interval, idle_timeout=idle_timeout)

    def preprocess_images(self, images) -> BatchFeature:
        """Images as STORM sees them, one frame each prepared like video frames: `pixel_values` (N, 3, H, W)."""
        names = ("do_resize", "size", "resample", "do_rescale", "rescale_factor", "do_normalize", "image_mean",
                 "image_std", "temporal_sampling_stride")
        clips = [_image_array(image) for image in make_image_list(images)]
        clips = self._prepare_input_videos(clips)  # PIL images were converted to RGB by _image_array
        clips = self._preprocess(clips, **{name: getattr(self, name) for name in names})["pixel_values_videos"]
        return BatchFeature(data={"pixel_values": clips[:, 0]})  # (N, 1, 3, H, W) one-frame clips -> (N, 3, H, W)


__all__ = ["StormVideoProcessor", "StormVideoMetadata", "concatenate_videos"]
