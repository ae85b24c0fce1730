"""What reaches the model has the colours that were drawn, channel by channel (a decoder returning BGR, or any other
channel order, fails here): through VideoReader, the video processor and the processor's chat template."""

import numpy as np
import PIL.Image
from processor_testing import assert_shows, index_frames, to_pixels

from storm_hf.processors.video_decoding import VideoReader


def test_the_reader_returns_the_drawn_colours(make_video):
    with VideoReader(make_video(60)) as reader:
        frames = reader.read(range(60))
    assert_shows(frames, range(60))
    # the cells of frame 1: the first amber (red high, blue low), every other one blue (red low, blue high)
    assert np.all(frames[1, 4, 4] > (200, 140, 0)) and np.all(frames[1, 4, 4] < (256, 200, 80))
    assert np.all(frames[1, 4, 12] > (0, 50, 180)) and np.all(frames[1, 4, 12] < (80, 130, 256))


def test_the_video_processor_returns_the_drawn_colours(video_processor, make_video):
    out = video_processor(str(make_video(60)), do_sample_frames=False)
    assert_shows(to_pixels(out["pixel_values_videos"][0]), range(60))
    images = video_processor.preprocess_images([PIL.Image.fromarray(index_frames(6)[5]), index_frames(9)[8]])
    assert_shows(to_pixels(images["pixel_values"]), [5, 8])


def test_the_chat_template_delivers_the_drawn_colours(processor, make_video):
    content = [
        {"type": "video", "path": str(make_video(60))},
        {"type": "image", "image": PIL.Image.fromarray(index_frames(6)[5])},
        {"type": "text", "text": "What happens?"},
    ]
    out = processor.apply_chat_template(
        [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=True, return_dict=True,
        return_tensors="pt", processor_kwargs={"do_sample_frames": False},
    )
    assert_shows(to_pixels(out["pixel_values_videos"][0]), range(60))
    assert_shows(to_pixels(out["pixel_values"]), [5])
