"""Every Python block of the exported model card runs, as a Hub user would run it: storm_hf not installed, the
Hub id replaced by the exported folder, a real `video.mp4` beside it; and it prints or saves what it promises."""

import re
import shutil
import subprocess
import sys

import pytest
import torch
from hub_testing import QUESTION, chat_about, greedy_answer
from safetensors import safe_open

CODE_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)
FRAMES = 32  # the card's num_frames: 8 slots of k = 4 frames


def card_blocks(folder) -> list[str]:
    return CODE_BLOCK.findall((folder / "README.md").read_text())


def test_the_card_has_a_block_for_each_use(hub_folder):
    blocks = card_blocks(hub_folder)
    assert len(blocks) == 4
    for block, marker in zip(blocks, ("model.generate", "pipeline(", "temporal_sampling_stride", "get_peft_model")):
        assert marker in block


def expected_generate_output(model, processor, video) -> str:
    return greedy_answer(model, processor, video, 32, num_frames=FRAMES) + "\n"


def expected_pipeline_output(folder, video) -> str:
    from transformers import pipeline

    pipe = pipeline("video-text-to-text", model=str(folder))  # the installed package's pipeline, same code
    from_text = pipe(text=QUESTION, videos="video.mp4", num_frames=FRAMES, max_new_tokens=32)
    from_chat = pipe(text=chat_about("video.mp4"), num_frames=FRAMES, max_new_tokens=32, return_full_text=False)
    return f"{from_text}\n{from_chat}\n"


def expected_settings_output(model, processor, video) -> str:
    # The video: 24 frames at 8 fps (3 s), 4 video tokens per slot of k = 4 frames.
    rows = [
        ({"num_frames": FRAMES}, 32),  # asks 32 of 24 frames: every frame, some twice (a warning says so), 8 slots
        ({"fps": 2, "max_frames": 64}, 8),  # 3 s at 2 fps = 6 frames, rounded to 8 (2 slots)
        ({"num_frames": FRAMES, "temporal_sampling_stride": 2}, 16),  # 8 slots, every 2nd kept
    ]
    return "".join(
        f"{settings} {tokens} video tokens: {greedy_answer(model, processor, video, 16, **settings)}\n"
        for settings, tokens in rows
    )


def check_lora_block(stdout: str, workdir, model, processor) -> None:
    """The LoRA block trains one step and saves an adapter on the LLM's attention and the Mamba projections only,
    every adapter of which took part in the step; its printed loss is the untrained model's on the answer tokens
    (LoRA B starts at 0)."""
    loss = float(re.search(r"^loss (\S+) on \d+ answer tokens$", stdout, re.MULTILINE).group(1))
    messages = chat_about("video.mp4") + [
        {"role": "assistant", "content": [{"type": "text", "text": "A square moves to the right."}]}
    ]
    batch = processor.apply_chat_template(
        messages, tokenize=True, return_dict=True, return_tensors="pt", return_assistant_tokens_mask=True,
        processor_kwargs={"num_frames": FRAMES},
    )
    answer = torch.as_tensor(batch.pop("assistant_masks")).bool()
    assert f"on {int(answer.sum())} answer tokens" in stdout and 0 < int(answer.sum()) < answer.numel()
    labels = batch["input_ids"].masked_fill(~answer, -100)  # the loss on the answer alone, as the block computes it
    with torch.no_grad():
        expected_loss = model(**batch, labels=labels).loss.item()
    assert loss == pytest.approx(expected_loss, abs=1e-3)
    assert re.search(r"trainable params: [\d,]+ \|\| all params", stdout)
    adapter = workdir / "storm-lora-adapter"
    with safe_open(adapter / "adapter_model.safetensors", framework="pt") as f:
        tensors = {key: f.get_tensor(key) for key in f.keys()}
    modules = {key.split(".lora_")[0] for key in tensors}
    assert modules and not any("vision_tower" in name for name in modules)
    kinds = {name.rsplit(".", 1)[-1] for name in modules}
    assert kinds == {"q_proj", "k_proj", "v_proj", "o_proj", "in_proj", "x_proj", "x_proj_b", "out_proj"}
    # an adapter the forward pass never runs gets no gradient, and its B stays at zero after the step
    untrained = sorted(key for key, tensor in tensors.items() if ".lora_B." in key and not tensor.any())
    assert not untrained, f"adapters that never ran: {untrained}"


def check_output(index, stdout, workdir, folder, model, processor, video) -> None:
    if index == 0:
        assert stdout == expected_generate_output(model, processor, video)
    elif index == 1:
        assert stdout == expected_pipeline_output(folder, video)
    elif index == 2:
        assert stdout == expected_settings_output(model, processor, video)
    else:
        check_lora_block(stdout, workdir, model, processor)


@pytest.mark.parametrize("index", range(4))
def test_card_block_runs_and_prints_what_it_promises(
    hub_folder, video_file, tiny_model_and_processor, tmp_path, python_without_storm_hf, monkeypatch, index
):
    block = card_blocks(hub_folder)[index].replace('"tiny-storm"', repr(str(hub_folder)))
    assert str(hub_folder) in block
    shutil.copy(video_file, tmp_path / "video.mp4")
    result = python_without_storm_hf(block, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    monkeypatch.chdir(tmp_path)  # the blocks name "video.mp4"
    check_output(index, result.stdout, tmp_path, hub_folder, *tiny_model_and_processor, tmp_path / "video.mp4")


@pytest.fixture(scope="module")
def folder_without_code(tiny_model_and_processor, tmp_path_factory):
    from storm_hf.conversion.hub_export import export_hub_folder

    return export_hub_folder(
        *tiny_model_and_processor, tmp_path_factory.mktemp("installed") / "tiny-storm", include_code=False
    )


@pytest.mark.parametrize("index", [0, 1])
def test_the_card_of_a_folder_without_code_runs_with_the_installed_package(
    folder_without_code, video_file, tiny_model_and_processor, tmp_path, monkeypatch, index
):
    card = (folder_without_code / "README.md").read_text()
    assert "trust_remote_code=True" not in card and "custom_code" not in card and "holds no model code" in card
    block = card_blocks(folder_without_code)[index].replace('"tiny-storm"', repr(str(folder_without_code)))
    assert block.startswith("import storm_hf")
    shutil.copy(video_file, tmp_path / "video.mp4")
    result = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    monkeypatch.chdir(tmp_path)
    check_output(
        index, result.stdout, tmp_path, folder_without_code, *tiny_model_and_processor, tmp_path / "video.mp4"
    )
