"""A dense "describe the video" answer for any synthetic scene: what each video token of the tiny STORM should hold.

The tiny STORM turns a 16-frame 32 px clip into temporal slots of `pool_window` frames, each of 2x2 tokens (one
per quadrant of the frame). The description names, slot by slot and quadrant by quadrant (row-major, the order of
the video tokens), what was drawn there during the slot: `none`, the colour of the shape, or, if it flashed there,
how many of the slot's frames it flashed on (`one` .. `four`). Slots are separated by commas, as the video tokens are
by one separator per slot, so each word sits at the same distance from the token it describes.

Training mixes "Describe the video." rows (a scene with this conversation instead of its question) into the
question rows: dense supervision that makes the language model read the video tokens and the encoder keep every
aspect of the clip (docs/shipped-model.md, "Fourth round"). It is never evaluated.
"""

from .questions import COUNTS
from .scenes import FLASH_RGB, PALETTE, Sprite, shape_mask

# The name of the describe rows in a training curriculum (not a question type: it is never evaluated).
DESCRIBE = "describe"
DESCRIBE_TEXT = "Describe the video."
EMPTY = "none"


def _colour_name(rgb) -> str:
    for name, value in PALETTE.items():
        if tuple(int(c) for c in rgb) == value:
            return name
    raise ValueError(f"{tuple(rgb)} is not a palette colour")


def slot_entries(sprites: list[Sprite], num_frames: int, frame_size: int, pool_window: int, grid: int = 2):
    """`[[word per quadrant] per slot]`: what each of the `grid` x `grid` regions shows during each slot."""
    cell = frame_size // grid
    masks = [shape_mask(sprite.shape, sprite.size) for sprite in sprites]
    slots = []
    for start in range(0, num_frames, pool_window):
        words = []
        for row in range(grid):
            for col in range(grid):
                word = EMPTY
                for sprite, mask in zip(sprites, masks):
                    flashes, colour = 0, None
                    for t in range(start, start + pool_window):
                        if not sprite.visible[t]:
                            continue
                        y, x = (int(v) for v in sprite.top_left[t])
                        # the part of the shape's mask inside this region
                        part = mask[
                            max(row * cell - y, 0) : max((row + 1) * cell - y, 0),
                            max(col * cell - x, 0) : max((col + 1) * cell - x, 0),
                        ]
                        if not part.any():
                            continue
                        if tuple(int(c) for c in sprite.rgb[t]) == FLASH_RGB:
                            flashes += 1
                        else:
                            colour = _colour_name(sprite.rgb[t])
                    if flashes:
                        word = COUNTS[flashes - 1]
                    elif colour is not None:
                        word = colour
                words.append(word)
        slots.append(words)
    return slots


def describe(sprites: list[Sprite], num_frames: int, frame_size: int, pool_window: int, stride: int = 1) -> str:
    """The description of a scene as the video tokens at sampling stride `stride` should hold it: each kept slot
    stands for the `pool_window * stride` frames from its start to the next kept slot, dropped ones included."""
    entries = slot_entries(sprites, num_frames, frame_size, pool_window * stride)
    return ", ".join(" ".join(words) for words in entries)


def describe_messages(text: str) -> list[dict]:
    """The describe conversation of a video whose description is `text`."""
    return [
        {"role": "user", "content": [{"type": "video"}, {"type": "text", "text": DESCRIBE_TEXT}]},
        {"role": "assistant", "content": [{"type": "text", "text": text}]},
    ]


def description_texts() -> list[str]:
    """Texts that hold every word and separator a description can have (for training the tokenizer)."""
    words = [EMPTY, *PALETTE, *COUNTS]
    return [DESCRIBE_TEXT] + [", ".join(" ".join([a, b, a, b]) for b in words) for a in words]
