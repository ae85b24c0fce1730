"""The collator's pixels have the colours the training videos and images were drawn with, channel by channel (red
square on grey for the videos, blue square for the image): a decoder returning BGR, or any other channel order, fails
here."""

import numpy as np

from storm_hf.training.data import StormDataCollator

from training_rows import NUM_FRAMES, moving_square

TOLERANCE = 30  # per channel, at the squares' interiors and a background corner; H.264 and resizing stay within it


def pixels(pixel_values) -> np.ndarray:
    """Normalised model input (N, 3, H, W) with SigLIP's mean = std = 0.5 back to (N, H, W, 3) RGB in [0, 255]."""
    return (pixel_values.permute(0, 2, 3, 1).numpy() * 0.5 + 0.5) * 255


def assert_square(frames, drawn):
    """Each frame's square interior (its 8x8 square less a 1-pixel border) and top-left corner have the drawn
    colours."""
    for frame, picture in zip(frames, drawn):
        rows, columns = np.nonzero(np.any(picture != picture[0, 0], axis=-1))
        inner = (slice(rows.min() + 1, rows.max()), slice(columns.min() + 1, columns.max()))
        square = frame[inner].reshape(-1, 3).mean(axis=0)
        np.testing.assert_allclose(square, picture[inner][0, 0], atol=TOLERANCE)
        np.testing.assert_allclose(frame[:4, :4].reshape(-1, 3).mean(axis=0), picture[0, 0], atol=TOLERANCE)


def test_the_collator_delivers_the_drawn_colours(processor, dataset):
    rows = {row["id"]: row for row in dataset}
    batch = StormDataCollator(processor, frame_kwargs={"num_frames": NUM_FRAMES})([rows["left"], rows["image"]])
    assert batch["video_frame_counts"].tolist() == [NUM_FRAMES]
    assert_square(pixels(batch["pixel_values_videos"][0]), moving_square(NUM_FRAMES, -1, 0))
    assert_square(pixels(batch["pixel_values"]), moving_square(1, 0, 0, colour=(30, 30, 220)))
