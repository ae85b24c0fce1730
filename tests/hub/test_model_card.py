"""Every Python block of the exported model card runs, as a Hub user would run it: storm_hf not installed, the
Hub id replaced by the exported folder, a real `video.mp4` beside it."""

import re
import shutil
import subprocess
import sys

import pytest

CODE_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def card_blocks(folder) -> list[str]:
    return CODE_BLOCK.findall((folder / "README.md").read_text())


def test_the_card_has_a_block_for_each_use(hub_folder):
    blocks = card_blocks(hub_folder)
    assert len(blocks) == 4
    for block, marker in zip(blocks, ("model.generate", "pipeline(", "temporal_sampling_stride", "get_peft_model")):
        assert marker in block


@pytest.mark.parametrize("index", range(4))
def test_card_block_runs(hub_folder, video_file, tmp_path, python_without_storm_hf, index):
    block = card_blocks(hub_folder)[index].replace('"tiny-storm"', repr(str(hub_folder)))
    assert str(hub_folder) in block
    shutil.copy(video_file, tmp_path / "video.mp4")
    result = python_without_storm_hf(block, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip(), "every block prints what it produced"


@pytest.fixture(scope="module")
def folder_without_code(tiny_model_and_processor, tmp_path_factory):
    from storm_hf.conversion.hub_export import export_hub_folder

    return export_hub_folder(
        *tiny_model_and_processor, tmp_path_factory.mktemp("installed") / "tiny-storm", include_code=False
    )


@pytest.mark.parametrize("index", [0, 1])
def test_the_card_of_a_folder_without_code_runs_with_the_installed_package(
    folder_without_code, video_file, tmp_path, index
):
    card = (folder_without_code / "README.md").read_text()
    assert "trust_remote_code=True" not in card and "custom_code" not in card and "holds no model code" in card
    block = card_blocks(folder_without_code)[index].replace('"tiny-storm"', repr(str(folder_without_code)))
    assert block.startswith("import storm_hf")
    shutil.copy(video_file, tmp_path / "video.mp4")
    result = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip()
