import atexit
import os
import random
import shutil
import tempfile

# No test touches the network or a model hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# transformers copies remote code into a module cache and imports it from there. Each test session gets its own, so
# that sessions running side by side (CI jobs, checkouts on one machine) never import each other's copies.
# transformers reads the variable when it is first imported, which is after this file.
MODULES_CACHE = tempfile.mkdtemp(prefix="storm-hf-test-modules-")
os.environ["HF_MODULES_CACHE"] = MODULES_CACHE
atexit.register(shutil.rmtree, MODULES_CACHE, ignore_errors=True)

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

# Without a GPU, Triton kernels run in Triton's interpreter on CPU tensors. Triton reads this when a kernel is
# decorated, which storm_hf does at the first call of a Triton kernel, after this.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

TINY_VISION = {
    "model_type": "siglip_vision_model",
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "image_size": 32,
    "patch_size": 8,
    "vision_use_head": False,
}
TINY_TEXT = {
    "model_type": "qwen2",
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 128,
    "max_position_embeddings": 512,
}
VIDEO_TOKEN_ID, IMAGE_TOKEN_ID = 100, 101


def tiny_storm_config(vision=None, text=None, **kwargs):
    """A StormConfig small enough for 2 CPU cores: 32 px frames, 4x4 patches, 64-wide LLM.

    `kwargs` go to StormConfig; a `temporal_config` dict is merged over `{"d_state": 8}`.
    """
    from storm_hf.modeling.configuration_storm import StormConfig

    temporal = {"d_state": 8, **kwargs.pop("temporal_config", {})}
    return StormConfig(
        vision_config={**TINY_VISION, **(vision or {})},
        text_config={**TINY_TEXT, **(text or {})},
        temporal_config=temporal,
        video_token_id=VIDEO_TOKEN_ID,
        image_token_id=IMAGE_TOKEN_ID,
        **kwargs,
    )


@pytest.fixture(autouse=True)
def seeded():
    """Every test starts from the same random state, whichever tests ran before it or were selected."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tiny_config():
    return tiny_storm_config


_BLOCK_STORM_HF = """
import importlib.abc, sys

class _BlockStormHf(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "storm_hf":
            raise ImportError("storm_hf is not importable in this process")

sys.meta_path.insert(0, _BlockStormHf())
"""


@pytest.fixture
def python_without_storm_hf(tmp_path):
    """run(script, *args, cwd=None) -> CompletedProcess: `script` in a fresh Python where storm_hf cannot be
    imported (only the Hub code in a folder can build STORM), offline, with its own module cache."""
    import subprocess
    import sys
    import textwrap

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "hf-modules")}

    def run(script: str, *args, cwd=None, timeout: int = 300):
        code = _BLOCK_STORM_HF + textwrap.dedent(script)
        command = [sys.executable, "-c", code, *map(str, args)]
        return subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)

    return run
