"""Fixtures of the conversion tests; the checkpoint builders live in research_fixtures.py."""

import pytest
from research_fixtures import build_research_checkpoint


@pytest.fixture(scope="session")
def research_checkpoint(tmp_path_factory):
    """A float32 folder-layout checkpoint (untied LLM, tokenizer without placeholders), shared read-only."""
    return build_research_checkpoint(tmp_path_factory.mktemp("research") / "ckpt")
