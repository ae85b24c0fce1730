"""Fixtures of the vLLM tests: a tiny STORM Hub folder, videos, transformers' reference answers.

They run in a virtual environment with vLLM (`.ci/vllm` builds one with vLLM's CPU build); each test module skips
itself elsewhere (`vllm_testing.require_vllm`).
"""

import os

import pytest

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB of KV cache: the tiny model needs little
os.environ.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")

from vllm_testing import CORPUS, TEXT, TransformersReference, write_videos  # noqa: E402

from storm_hf.benchmarking.hub_folder import write_random_storm  # noqa: E402


@pytest.fixture(scope="session")
def storm_folder(tiny_config, tmp_path_factory):
    return write_random_storm(tmp_path_factory.mktemp("hub") / "tiny-storm", tiny_config(text=TEXT), CORPUS, seed=0)


@pytest.fixture(scope="session")
def videos(tmp_path_factory):
    return write_videos(tmp_path_factory.mktemp("videos"))


@pytest.fixture(scope="session")
def reference(storm_folder):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(storm_folder).eval()
    return TransformersReference(model, AutoProcessor.from_pretrained(storm_folder))
