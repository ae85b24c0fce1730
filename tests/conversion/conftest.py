"""Fixtures of the conversion tests; the checkpoint builders live in research_fixtures.py."""

import pytest
import torch
from research_fixtures import TEXT, VISION, build_research_checkpoint, tiny_tokenizer
from transformers import Qwen2Config, Qwen2ForCausalLM, SiglipVisionConfig, SiglipVisionModel


@pytest.fixture(scope="session")
def research_checkpoint(tmp_path_factory):
    """A float32 folder-layout checkpoint (untied LLM, tokenizer without placeholders), shared read-only."""
    return build_research_checkpoint(tmp_path_factory.mktemp("research") / "ckpt")


@pytest.fixture(scope="session")
def parts(tmp_path_factory):
    """(SigLIP vision model folder, Qwen2 causal LM folder with its tokenizer) for `storm-hf init`."""
    root = tmp_path_factory.mktemp("parts")
    torch.manual_seed(0)
    tokenizer = tiny_tokenizer(placeholders=False)
    SiglipVisionModel(SiglipVisionConfig(**VISION)).save_pretrained(root / "siglip")
    Qwen2ForCausalLM(Qwen2Config(**TEXT, vocab_size=len(tokenizer))).save_pretrained(root / "qwen2")
    tokenizer.save_pretrained(root / "qwen2")
    return root / "siglip", root / "qwen2"
