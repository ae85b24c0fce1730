"""Every Python block of the exported model card runs, as a Hub user would run it: storm_hf not installed, the
Hub id replaced by the exported folder, a real `video.mp4` beside it."""

import re
import shutil

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
