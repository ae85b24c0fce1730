"""Training end to end on the tiny model: the loss falls, stages freeze what they should, resuming continues, and a
LoRA adapter reloads in a fresh process and merges into the base model."""

import re
import subprocess
import sys
import warnings
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from storm_hf import StormForConditionalGeneration
from storm_hf.cli import main
from storm_hf.training.arguments import StormTrainingArguments
from storm_hf.training.data import StormDataCollator
from storm_hf.training.trainer import build_trainer, save_trained

from training_rows import NUM_FRAMES


def training_args(tmp_path, **overrides) -> StormTrainingArguments:
    settings = {
        "output_dir": str(tmp_path / "run"),
        "num_frames": NUM_FRAMES,
        "per_device_train_batch_size": 2,
        "dataloader_num_workers": 0,
        "max_steps": 2,
        "learning_rate": 1e-3,
        "logging_steps": 1,
        "save_strategy": "no",
        "disable_tqdm": True,
        "seed": 0,
        **overrides,
    }
    return StormTrainingArguments(**settings)


def mean_loss(model, processor, rows) -> float:
    collator = StormDataCollator(processor, frame_kwargs={"num_frames": NUM_FRAMES})
    model.eval()
    with torch.no_grad():
        return sum(model(**collator([row])).loss.item() for row in rows) / len(rows)


def test_the_train_command_reduces_the_loss_and_saves_a_hub_folder(
    storm_folder, data_file, dataset, processor, max_length, tmp_path, capsys
):
    rows = [row for row in dataset if row["id"] != "long"]
    before = mean_loss(StormForConditionalGeneration.from_pretrained(storm_folder), processor, rows)
    out = tmp_path / "run"
    argv = ["train", "--model", str(storm_folder), "--data", str(data_file), "--output-dir", str(out)]
    argv += ["--num-frames", str(NUM_FRAMES), "--max-length", str(max_length), "--max-steps", "8", "--batch-size", "2"]
    argv += ["--learning-rate", "1e-2", "--num-workers", "0", "--logging-steps", "1", "--save-steps", "100"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "stage sft; trainable parameters: vision_tower" in printed
    # 8 steps of 2 rows run through the 5-row data 3 times; the too-long row is skipped each time
    skipped = int(re.search(r"(\d+) sample\(s\) skipped for exceeding max_length", printed).group(1))
    assert skipped >= 3
    assert {"config.json", "model.safetensors", "processor_config.json", "modeling_storm.py", "README.md"} <= {
        path.name for path in (out / "model").iterdir()
    }
    after = mean_loss(StormForConditionalGeneration.from_pretrained(out / "model"), processor, rows)
    assert after < 0.75 * before, (before, after)


def test_align_changes_only_temporal_encoder_weights(model, processor, dataset, max_length, tmp_path):
    before = {name: param.detach().clone() for name, param in model.named_parameters()}
    trainer = build_trainer(model, processor, dataset, training_args(tmp_path, stage="align", max_length=max_length))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.train()
    # without an accelerator the DataLoader does not pin memory (pinning would only warn)
    assert trainer.args.dataloader_pin_memory == torch.accelerator.is_available()
    assert not [w for w in caught if "pin_memory" in str(w.message)]
    changed = {name for name, param in model.named_parameters() if not torch.equal(param, before[name])}
    assert changed and all(name.startswith("model.temporal_encoder.") for name in changed)
    # the gradient went through both Mamba blocks (in both scan directions) and the projector
    for name in ("projector.weight", "layers.0.mixer.in_proj.weight", "layers.1.mixer.x_proj_b.weight"):
        assert f"model.temporal_encoder.{name}" in changed, name
    assert "model.temporal_encoder.layers.0.mixer.A_b_log" in changed


class StepRecorder(TrainerCallback):
    def __init__(self):
        self.steps, self.start_weights = [], None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.start_weights = {name: param.detach().clone() for name, param in model.named_parameters()}

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append(state.global_step)


def test_resume_continues_from_the_saved_step(storm_folder, processor, dataset, max_length, tmp_path):
    first = training_args(tmp_path, max_length=max_length, max_steps=2, save_strategy="steps", save_steps=2)
    build_trainer(StormForConditionalGeneration.from_pretrained(storm_folder), processor, dataset, first).train()
    checkpoint = tmp_path / "run" / "checkpoint-2"
    assert (checkpoint / "optimizer.pt").is_file() and (checkpoint / "trainer_state.json").is_file()

    recorder = StepRecorder()
    second = training_args(tmp_path, max_length=max_length, max_steps=4, save_strategy="steps", save_steps=2)
    model = StormForConditionalGeneration.from_pretrained(storm_folder)
    trainer = build_trainer(model, processor, dataset, second, callbacks=[recorder])
    trainer.train(resume_from_checkpoint=True)  # the last checkpoint in output_dir
    assert recorder.steps == [3, 4] and trainer.state.global_step == 4
    saved = load_file(checkpoint / "model.safetensors")
    for name, weights in recorder.start_weights.items():
        assert torch.equal(weights, saved[name]), name
    losses = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert [entry["step"] for entry in losses] == [1, 2, 3, 4]
    assert all("learning_rate" in entry and "skipped_too_long" in entry for entry in losses)


_RELOAD = """
import sys, torch
from storm_hf.training.merge import load_adapter_model
model = load_adapter_model(sys.argv[1], sys.argv[2]).eval()
with torch.no_grad():
    torch.save(model(**torch.load(sys.argv[3], weights_only=True)).logits, sys.argv[4])
"""


def test_lora_adapter_reloads_identically_in_a_fresh_process_and_merges(
    storm_folder, processor, dataset, max_length, tmp_path
):
    args = training_args(
        tmp_path, lora=True, lora_vision=True, max_length=max_length, learning_rate=1e-2, activation_checkpointing=True
    )
    trainer = build_trainer(StormForConditionalGeneration.from_pretrained(storm_folder), processor, dataset, args)
    trainer.train()
    adapter = save_trained(trainer, tmp_path / "adapter")
    assert {"adapter_config.json", "adapter_model.safetensors", "processor_config.json"} <= {
        path.name for path in adapter.iterdir()
    }

    batch = StormDataCollator(processor, frame_kwargs={"num_frames": NUM_FRAMES})(list(dataset)[:4])
    torch.save(batch, tmp_path / "batch.pt")
    adapted = trainer.model.eval()
    with torch.no_grad():
        expected = adapted(**batch).logits
        base = StormForConditionalGeneration.from_pretrained(storm_folder).eval()(**batch).logits
    assert not torch.allclose(expected, base, atol=1e-3), "the adapter changed nothing"

    paths = [storm_folder, adapter, tmp_path / "batch.pt", tmp_path / "logits.pt"]
    subprocess.run([sys.executable, "-c", _RELOAD, *map(str, paths)], check=True)
    assert torch.equal(torch.load(tmp_path / "logits.pt", weights_only=True), expected)

    merged_dir = tmp_path / "merged"
    assert main(["merge-lora", str(storm_folder), str(adapter), str(merged_dir)]) == 0
    merged = StormForConditionalGeneration.from_pretrained(merged_dir).eval()
    assert not any("lora" in name for name in merged.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(merged(**batch).logits, expected, rtol=0, atol=1e-5)


def test_merge_lora_names_a_folder_without_an_adapter(storm_folder, tmp_path, capsys):
    assert main(["merge-lora", str(storm_folder), str(storm_folder), str(tmp_path / "out")]) == 2
    assert re.search(r"No LoRA adapter at .*\(adapter_config.json is missing\)", capsys.readouterr().err)


def test_the_lora_example_trains_and_merges(storm_folder, data_file, tmp_path):
    example = Path(__file__).parents[2] / "examples" / "finetune_lora.py"
    out = tmp_path / "example"
    command = [sys.executable, str(example), "--model", str(storm_folder), "--data", str(data_file)]
    command += ["--output-dir", str(out), "--num-frames", str(NUM_FRAMES), "--max-steps", "1"]
    subprocess.run(command, check=True)
    assert (out / "adapter" / "adapter_config.json").is_file() and (out / "checkpoint-1").is_dir()
    merged = StormForConditionalGeneration.from_pretrained(out / "merged")
    assert isinstance(merged, StormForConditionalGeneration) and (out / "merged" / "processor_config.json").is_file()
