"""Every mutant still applies to the code as it is: a refactor that moves a mutated snippet must update the mutant
(`check.py` refuses a stale one, but only when someone runs it)."""

from pathlib import Path

import pytest
from check import mutated_texts
from mutants import MUTANTS

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda mutant: mutant.name)
def test_each_edit_changes_the_code_it_names(mutant):
    texts = mutated_texts(mutant, lambda path: (ROOT / path).read_text())
    assert all(text != (ROOT / path).read_text() for path, text in texts.items())
