"""`storm-hf train-tiny` end to end on a handful of scenes and two steps: it renders the validation videos, trains on
fresh scenes stage by stage, scores the validation split and writes a folder that loads and answers; the curriculum
option's parsing and the scene stream's order."""

import json

import pytest
import torch

from storm_hf import StormForConditionalGeneration
from storm_hf.cli import main
from storm_hf.data.questions import QUESTION_TYPES
from storm_hf.processors.processing_storm import StormProcessor
from storm_hf.tiny.evaluation import accuracy, evaluate_rows, load_rows
from storm_hf.tiny.scene_stream import Clip, SceneStream, Stage
from storm_hf.tiny.recipe import SHIPPED_MODEL_DIR, build_model, build_processor
from storm_hf.tiny.training import (
    ClipCollator,
    copy_matching_weights,
    format_clips,
    format_curriculum,
    parse_clips,
    parse_curriculum,
)


@pytest.mark.parametrize("temporal_layers", [2, 0])
def test_train_tiny_writes_a_loadable_model(tmp_path, temporal_layers):
    out = tmp_path / "run"
    argv = ["train-tiny", "--out", str(out), "--temporal-layers", str(temporal_layers), "--curriculum",
            "direction=4,all=4", "--clips", "16x1,32x2", "--validation-clips", "16x2,32x2", "--validation-size", "4",
            "--eval-every", "1", "--batch-size", "4", "--num-workers", "0"]
    assert main(argv) == 0

    summary = json.loads((out / "validation.json").read_text())
    assert summary["temporal_layers"] == temporal_layers and summary["clips"] == "16x1,32x2"
    assert summary["steps"] == 2 and [point["step"] for point in summary["validation"]] == [1, 2]
    assert set(summary["validation"][-1]) == {"step", "samples", "f16_s2", "f32_s2"}
    assert set(summary["validation"][-1]["f32_s2"]) == {"overall", *QUESTION_TYPES}
    assert [row["num_frames"] for row in load_rows(out / "data" / "frames32" / "validation.jsonl")] == [32] * 4
    model = StormForConditionalGeneration.from_pretrained(out / "model")
    assert len(model.model.temporal_encoder.layers) == temporal_layers
    processor = StormProcessor.from_pretrained(out / "model")
    rows = load_rows(out / "data" / "frames16" / "validation.jsonl")
    answers = evaluate_rows(model, processor, rows, num_frames=16, stride=2)
    assert len(answers) == 4 and set(accuracy(rows, answers)) >= {"overall"}

    # evaluate-tiny on the test split: s = 8 is skipped at 16 frames (4 temporal slots), kept at 32 (8 slots)
    results, plot = tmp_path / "accuracy.json", tmp_path / "accuracy.png"  # the plot goes beside the results
    argv = ["evaluate-tiny", "--model", f"tiny={out / 'model'}", "--data", str(tmp_path / "test"), "--test-size", "4",
            "--frames", "16,32", "--strides", "1,8", "--json", str(results)]
    assert main(argv) == 0
    report = json.loads(results.read_text())
    assert {frames: list(by_stride) for frames, by_stride in report["accuracy"]["tiny"].items()} == {
        "16": ["1"], "32": ["1", "8"]
    }
    assert [report["accuracy"]["tiny"]["32"][s]["video_tokens"] for s in ("1", "8")] == [32, 4]
    assert plot.stat().st_size > 0


def test_train_tiny_unidirectional_writes_a_model_that_streams(tmp_path):
    out = tmp_path / "run"
    argv = ["train-tiny", "--out", str(out), "--unidirectional", "--init-from", str(SHIPPED_MODEL_DIR), "--curriculum",
            "all=4", "--validation-size", "4", "--eval-every", "1", "--batch-size", "4", "--num-workers", "0"]
    assert main(argv) == 0
    summary = json.loads((out / "validation.json").read_text())
    assert summary["unidirectional"] is True and summary["init_from"] == str(SHIPPED_MODEL_DIR)
    model = StormForConditionalGeneration.from_pretrained(out / "model").eval()
    temporal = model.config.temporal_config
    assert (temporal.bidirectional, temporal.temporal_sampling_slot, temporal.num_layers) == (False, "last", 2)
    processor = StormProcessor.from_pretrained(out / "model")
    rows = load_rows(out / "data" / "frames16" / "validation.jsonl")
    offline = evaluate_rows(model, processor, rows[:2], num_frames=16, stride=2)
    for row, answer in zip(rows[:2], offline):
        session = model.start_stream(processor, temporal_sampling_stride=2)
        assert session.add_frames(row["video"]) == 16
        question = row["messages"][0]["content"][1]["text"]
        assert session.ask(question, max_new_tokens=4, do_sample=False).strip().lower() == answer


def test_a_unidirectional_model_starts_from_a_bidirectional_one_without_its_backward_branch():
    processor = build_processor()
    bidirectional, unidirectional = build_model(processor, seed=1), build_model(processor, seed=2, unidirectional=True)
    left_out = copy_matching_weights(unidirectional, bidirectional)
    assert len(left_out) == 2 * 7  # per block: conv1d_b weight and bias, x_proj_b, dt_proj_b weight and bias, A_b_log, D_b
    assert all("_b." in name or name.endswith((".A_b_log", ".D_b")) for name in left_out)
    source = bidirectional.state_dict()
    assert all(torch.equal(tensor, source[name]) for name, tensor in unidirectional.state_dict().items())
    with pytest.raises(ValueError, match="lacks 14 of this model's tensors"):
        copy_matching_weights(bidirectional, unidirectional)


def test_curriculum_text_round_trips_and_bad_stages_are_named():
    stages = parse_curriculum("direction=8, direction+flash_count=16,all=32")
    assert stages == (Stage(("direction",), 8), Stage(("direction", "flash_count"), 16), Stage(tuple(QUESTION_TYPES), 32))
    assert parse_curriculum(format_curriculum(stages)) == stages
    described = parse_curriculum("describe=8,describe+all=16")
    assert described == (Stage(("describe",), 8), Stage(("describe", *QUESTION_TYPES), 16))
    assert format_curriculum(described) == "describe=8,describe+all=16"
    for bad in ("direction", "colour=8", "all=0", "all=x"):
        with pytest.raises(ValueError, match=f"bad curriculum stage '{bad}'"):
            parse_curriculum(bad)


def test_clip_settings_round_trip_and_bad_ones_are_named():
    clips = parse_clips("16x1, 32x2,64x4")
    assert clips == (Clip(16, 1), Clip(32, 2), Clip(64, 4))
    assert parse_clips(format_clips(clips)) == clips
    for bad in ("16", "16x", "x2", "16x1.5", "sixteen"):
        with pytest.raises(ValueError, match=f"bad clip setting '{bad}': write FRAMESxSTRIDE"):
            parse_clips(bad)


def test_scene_stream_runs_its_stages_in_order_and_workers_keep_the_order():
    stages = (Stage(("direction",), 4), Stage(("flash_count", "single_frame_colour"), 8))
    clips = (Clip(8, 1), Clip(16, 2))
    stream = SceneStream(stages, clips=clips, frame_size=32, pool_window=4, first_index=100, block_size=2)
    rows = list(stream)
    assert len(rows) == len(stream) == 12
    assert [row["id"] for row in rows] == [f"train-{index:08d}" for index in range(100, 112)]
    assert [row["question_type"] for row in rows] == ["direction"] * 4 + ["flash_count", "single_frame_colour"] * 4
    # blocks of 2 rows (one batch each) cycle through the clip settings, across the stages
    assert [(len(row["video"]), row["temporal_sampling_stride"]) for row in rows] == [(8, 1), (8, 1), (16, 2), (16, 2)] * 3
    assert rows[0]["video"].shape == (8, 32, 32, 3) and rows[0]["video"].dtype.name == "uint8"
    # two workers, each yielding its blocks of 2 rows: the loader interleaves them back into the same order
    loader = torch.utils.data.DataLoader(stream, batch_size=2, num_workers=2, collate_fn=lambda batch: batch)
    assert [row["id"] for batch in loader for row in batch] == [row["id"] for row in rows]


def test_a_describe_stage_refuses_strides_its_slots_do_not_divide():
    stages = (Stage(("describe",), 4),)
    with pytest.raises(ValueError, match="sampling stride 3: the 4 temporal slots of 16 frames"):
        SceneStream(stages, clips=(Clip(16, 1), Clip(16, 3)), frame_size=32, pool_window=4)
    # without describe rows any stride trains
    SceneStream((Stage(("direction",), 4),), clips=(Clip(16, 3),), frame_size=32, pool_window=4)
    with pytest.raises(ValueError, match="Cannot train at 18 frames and stride 1: the frame count must be a multiple"):
        SceneStream(stages, clips=(Clip(18, 1),), frame_size=32, pool_window=4)


def test_describe_rows_cycle_with_the_questions_and_are_described_at_their_batch_setting():
    stream = SceneStream(
        (Stage(("describe", "flash_count"), 8),),
        clips=(Clip(16, 2), Clip(64, 4)),
        frame_size=32,
        pool_window=4,
        first_index=200,
        block_size=2,
    )
    rows = list(stream)
    assert [row["question_type"] for row in rows] == ["describe", "flash_count"] * 4
    assert rows[0]["messages"][0]["content"][1]["text"] == "Describe the video."
    assert rows[0]["messages"][1]["content"][0]["text"] == rows[0]["answer"]
    assert rows[1]["messages"][0]["content"][1]["text"].startswith("How many times")

    processor = build_processor()
    tokenizer = processor.tokenizer
    collator = ClipCollator(processor)
    # 16 frames at s = 2 and 64 frames at s = 4: 2 and 4 kept slots, one comma-separated part each
    for describe_row, question_row, (frames, stride, slots) in ((*rows[0:2], (16, 2, 2)), (*rows[2:4], (64, 4, 4))):
        assert len(describe_row["answer"].split(", ")) == slots
        batch = collator([describe_row, question_row])
        assert batch["temporal_sampling_stride"] == stride and batch["video_frame_counts"].tolist() == [frames] * 2
        labels = batch["labels"][0][batch["labels"][0] != -100]
        # the describe row's labels: one word per video token of the kept slots, separators, the end of turn
        assert tokenizer.decode(labels) == describe_row["answer"] + "<|im_end|>"
        video_tokens = (batch["input_ids"][0] == processor.video_token_id).sum()
        assert video_tokens == 4 * slots and len(labels) - 1 == video_tokens + (slots - 1)
    with pytest.raises(ValueError, match=r"A batch mixes clip settings \(frames, stride\) \[\(16, 2\), \(64, 4\)\]"):
        collator([rows[0], rows[2]])
