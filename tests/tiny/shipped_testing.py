"""What the tests of both shipped models share: the checks of a shipped folder and a sample of fresh test videos."""

from storm_hf.data.synthetic import write_dataset
from storm_hf.tiny.evaluation import load_rows
from storm_hf.tiny.recipe import NUM_FRAMES

# Test-split indices from 480 on: the test split, beyond the 480 videos the docs evaluate at each frame count; 48
# consecutive indices hold every answer of every question type equally often.
SAMPLE_START = 480


def check_complete_and_pickle_free(folder) -> None:
    """The files a shipped folder needs, no pickle, and weights within the size budget (15 MiB)."""
    names = {path.name for path in folder.iterdir()}
    assert {"config.json", "model.safetensors", "processor_config.json", "tokenizer.json", "README.md"} <= names
    assert not [name for name in names if name.endswith((".bin", ".pt", ".pth", ".pkl"))]
    assert (folder / "model.safetensors").stat().st_size <= 15 * 2**20


def fresh_sample(tmp_path_factory, size: int, num_frames: int = NUM_FRAMES) -> list[dict]:
    """`size` test-split videos from `SAMPLE_START` on, rendered at `num_frames` frames."""
    folder = tmp_path_factory.mktemp(f"fresh-test-{num_frames}")
    return load_rows(write_dataset(size, SAMPLE_START, folder, split="test", num_frames=num_frames))
