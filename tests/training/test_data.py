"""Training data: loading rows with their media, assistant-only labels, mixed-length video batches, long samples."""

import json

import datasets
import numpy as np
import pytest
import torch

from storm_hf.processors.video_decoding import VideoReader
from storm_hf.training.data import IGNORE_INDEX, StormDataCollator, build_conversation, load_training_dataset

from training_rows import NUM_FRAMES, ROWS

FRAMES = {"num_frames": NUM_FRAMES}


def rows_by_id(dataset):
    return {row["id"]: row for row in dataset}


def test_media_paths_are_resolved_next_to_the_jsonl_and_checked(data_file, dataset):
    rows = rows_by_id(dataset)
    assert rows["left"]["video"] == str(data_file.parent / "videos/left.mp4")
    assert rows["image"]["image"] == str(data_file.parent / "images/blue.png") and rows["image"]["video"] is None
    broken = data_file.parent / "broken.jsonl"
    broken.write_text(json.dumps({**ROWS[0], "id": "gone", "video": "videos/gone.mp4"}) + "\n")
    with pytest.raises(FileNotFoundError, match=r"Row 0 \(id 'gone'\): video 'videos/gone.mp4' not found at .*gone"):
        load_training_dataset(broken)


def test_an_in_memory_dataset_uses_media_root(data_file):
    rows = datasets.Dataset.from_list([ROWS[0]])
    loaded = load_training_dataset(rows, media_root=data_file.parent)
    assert loaded[0]["video"] == str(data_file.parent / "videos/left.mp4")
    with pytest.raises(ValueError, match="no 'messages' column"):
        load_training_dataset(datasets.Dataset.from_list([{"video": "videos/left.mp4"}]))


def test_each_media_item_gets_the_rows_path_and_counts_must_agree():
    row = {"id": "r", "video": "/v.mp4", "image": None, "messages": [
        {"role": "user", "content": [{"type": "video", "text": None}, {"type": "text", "text": "Q"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "A"}]},
    ]}
    messages = build_conversation(row)
    assert messages[0]["content"][0] == {"type": "video", "path": "/v.mp4"}
    with pytest.raises(ValueError, match=r"has 2 video path\(s\) but 1 \{'type': 'video'\} item"):
        build_conversation({**row, "video": ["/v.mp4", "/w.mp4"]})
    with pytest.raises(ValueError, match=r"more \{'type': 'image'\} items in its messages than image paths"):
        build_conversation({**row, "video": None, "messages": [
            {"role": "user", "content": [{"type": "image"}]}, row["messages"][1]
        ]})


def test_a_row_may_carry_decoded_frames_instead_of_a_path(processor, dataset):
    row = rows_by_id(dataset)["left"]
    with VideoReader(row["video"]) as reader:
        frames = reader.read(np.arange(NUM_FRAMES))  # (T, H, W, 3) uint8
    in_memory = {**row, "video": frames}
    assert build_conversation(in_memory)[0]["content"][0]["video"] is frames
    collator = StormDataCollator(processor, frame_kwargs=FRAMES)
    from_file, from_frames = collator([row]), collator([in_memory, {**row, "video": torch.from_numpy(frames)}])
    for key in ("input_ids", "labels", "pixel_values_videos", "video_frame_counts"):
        for index in (0, 1):
            torch.testing.assert_close(from_frames[key][index], from_file[key][0], rtol=0, atol=0, msg=key)


def assistant_spans(input_ids, tokenizer) -> torch.Tensor:
    """Expected label mask, found independently of the chat template's markers: the tokens after each
    `<|im_start|>assistant\\n` up to and including the next `<|im_end|>`."""
    header = tokenizer.encode("<|im_start|>assistant\n", add_special_tokens=False)
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    ids, mask = input_ids.tolist(), torch.zeros(len(input_ids), dtype=torch.bool)
    for start in range(len(ids)):
        if ids[start : start + len(header)] == header:
            stop = ids.index(end, start + len(header))
            mask[start + len(header) : stop + 1] = True
    return mask


def test_labels_are_exactly_the_assistant_tokens(processor, dataset):
    collator = StormDataCollator(processor, frame_kwargs=FRAMES)
    rows = rows_by_id(dataset)
    batch = collator([rows["two-turns"], rows["image"]])
    tokenizer = processor.tokenizer
    for input_ids, labels, attention in zip(batch["input_ids"], batch["labels"], batch["attention_mask"]):
        expected = assistant_spans(input_ids, tokenizer) & attention.bool()
        assert torch.equal(labels != IGNORE_INDEX, expected)
        assert torch.equal(labels[expected], input_ids[expected])
    two_turns = batch["labels"][0]
    assert tokenizer.decode(two_turns[two_turns != IGNORE_INDEX]) == "red<|im_end|>up<|im_end|>"
    placeholders = (batch["input_ids"] == processor.video_token_id) | (batch["input_ids"] == processor.image_token_id)
    assert placeholders.sum() == 2 * 4 + 4 and (batch["labels"][placeholders] == IGNORE_INDEX).all()


def test_mixed_length_videos_are_padded_and_the_batch_equals_each_sample_alone(processor, dataset, model):
    collator = StormDataCollator(processor, frame_kwargs={"max_frames": NUM_FRAMES})  # the short video keeps its 4
    rows = rows_by_id(dataset)
    batch = collator([rows["left"], rows["short"], rows["image"]])
    assert batch["pixel_values_videos"].shape == (2, NUM_FRAMES, 3, 32, 32)
    assert batch["video_frame_counts"].tolist() == [NUM_FRAMES, 4]
    assert (batch["pixel_values_videos"][1, 4:] == 0).all() and batch["pixel_values"].shape == (1, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        batched = model(**batch).logits
        for i, name in enumerate(("left", "short", "image")):
            alone = collator([rows[name]])
            length = alone["input_ids"].shape[1]
            torch.testing.assert_close(batched[i, :length], model(**alone).logits[0], rtol=1e-4, atol=1e-5)


def test_a_too_long_sample_is_skipped_and_counted_never_truncated(processor, dataset, max_length, caplog):
    rows = rows_by_id(dataset)
    shrinking = StormDataCollator(processor, max_length=max_length, frame_kwargs=FRAMES)
    batch = shrinking([rows["long"], rows["left"]])
    assert batch["input_ids"].shape[0] == 1 and shrinking.num_skipped == 1
    assert "Skipped sample 'long'" in caplog.text and f"> max_length {max_length}" in caplog.text
    assert batch["video_frame_counts"].tolist() == [NUM_FRAMES]  # the kept row's video only
    with pytest.raises(ValueError, match="Every sample of this batch is longer than max_length"):
        shrinking([rows["long"]])
    assert shrinking.num_skipped == 2

    refilling = StormDataCollator(processor, max_length=max_length, frame_kwargs=FRAMES, dataset=dataset)
    batch = refilling([rows["long"], rows["long"]])
    assert batch["input_ids"].shape[0] == 2 and refilling.num_skipped >= 2
    assert (batch["attention_mask"].sum(1) <= max_length).all()


def test_the_skip_count_covers_data_loader_workers(processor, dataset, max_length):
    collator = StormDataCollator(processor, max_length=max_length, frame_kwargs=FRAMES)
    loader = torch.utils.data.DataLoader(
        [row for row in dataset if row["id"] != "image"], batch_size=2, num_workers=1, collate_fn=collator
    )
    sizes = [len(batch["input_ids"]) for batch in loader]
    assert sizes == [2, 1] and collator.num_skipped == 1


def test_a_sampling_stride_reaches_the_model_with_the_tokens_made_for_it(processor, dataset, model):
    rows = rows_by_id(dataset)
    every_slot = StormDataCollator(processor, frame_kwargs=FRAMES)([rows["left"]])
    strided = StormDataCollator(processor, frame_kwargs={**FRAMES, "temporal_sampling_stride": 2})([rows["left"]])
    assert "temporal_sampling_stride" not in every_slot and strided["temporal_sampling_stride"] == 2
    video_tokens = [(batch["input_ids"] == processor.video_token_id).sum().item() for batch in (every_slot, strided)]
    assert video_tokens[0] == 2 * video_tokens[1]
    model.eval()
    with torch.no_grad():
        model(**strided)  # raises if the model made a different number of video features than tokens
