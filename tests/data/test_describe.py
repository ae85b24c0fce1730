"""The dense "describe the video" answer: one word per video token (slot x quadrant), read from the scene."""

import numpy as np

from storm_hf.data.describe import describe, description_texts, slot_entries
from storm_hf.data.questions import QUESTION_TYPES
from storm_hf.data.scenes import FLASH_RGB, static_sprite
from storm_hf.data.synthetic import make_sample
from storm_hf.tiny.recipe import build_processor


def test_words_name_what_each_quadrant_shows_in_each_slot():
    # a red square in the top-left quadrant flashing on frames 1 and 3 (slot 0) and 8 (slot 2); a blue circle in
    # the bottom-right quadrant shown on frames 5..6 only (slot 1)
    red = static_sprite("square", 8, 16, (2, 3), "red")
    red.rgb[[1, 3, 8]] = FLASH_RGB
    blue = static_sprite("circle", 8, 16, (20, 22), "blue", slice(5, 7))
    assert slot_entries([red, blue], 16, 32, 4) == [
        ["two", "none", "none", "none"],
        ["red", "none", "none", "blue"],
        ["one", "none", "none", "none"],
        ["red", "none", "none", "none"],
    ]
    expected = "two none none none, red none none blue, one none none none, red none none none"
    assert describe([red, blue], 16, 32, 4) == expected
    # sampling stride 2 leaves slots 0 and 2 to the language model; each stands for its 8 frames up to the next
    # kept slot, so the blue circle of the dropped slot 1 is described in slot 0
    assert describe([red, blue], 16, 32, 4, stride=2) == "two none none blue, one none none none"


def test_a_shape_straddling_quadrants_is_named_in_each():
    moving = static_sprite("square", 8, 4, (12, 12), "green")  # covers the centre: all four quadrants
    assert slot_entries([moving], 4, 32, 4) == [["green"] * 4]


def test_every_scene_gets_one_word_per_video_token_and_each_word_is_one_token():
    tokenizer = build_processor().tokenizer
    for text in description_texts()[1:]:  # the descriptions (the first text is the question)
        for word in text.replace(",", " ,").split()[1:]:  # words inside a description carry a leading space
            assert len(tokenizer(" " + word if word != "," else word)["input_ids"]) == 1, word
    for index in range(2 * len(QUESTION_TYPES)):
        question, frames = make_sample("validation", index, 16, 32, 4)
        text = describe(question.sprites, 16, 32, 4)
        slots = text.split(", ")
        assert len(slots) == 4 and all(len(slot.split()) == 4 for slot in slots)
        ids = tokenizer(text)["input_ids"]
        assert len(ids) == 16 + 3  # 16 words and 3 separators
        # a quadrant named "none" is background on every frame of its slot
        for slot, words in enumerate(slot_entries(question.sprites, 16, 32, 4)):
            for quadrant, word in enumerate(words):
                row, col = divmod(quadrant, 2)
                pixels = frames[4 * slot : 4 * slot + 4, 16 * row : 16 * row + 16, 16 * col : 16 * col + 16]
                assert (word == "none") == (np.ptp(pixels.reshape(-1, 3), axis=0).max() == 0)
