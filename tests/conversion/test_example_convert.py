"""examples/convert_checkpoint.py converts a research checkpoint, prints the parity report and answers with it."""

import subprocess
import sys
from pathlib import Path

from huggingface_hub import ModelCard

from storm_hf.data.video_writer import write_video

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "convert_checkpoint.py"


def test_the_conversion_example(research_checkpoint, tmp_path):
    import numpy as np

    video = write_video(tmp_path / "clip.mp4", np.random.default_rng(0).integers(0, 255, (8, 32, 32, 3), np.uint8))
    command = [sys.executable, str(EXAMPLE), str(research_checkpoint), str(tmp_path / "out"), "--license", "mit",
               "--video", str(video)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    for line in ("vision tower", "tensors bit-equal to the source", "text-only logits vs Qwen2ForCausalLM", "answer:"):
        assert line in result.stdout
    assert ModelCard.load(tmp_path / "out" / "README.md").data.license == "mit"
