"""On a plain install (`pip install -e .`, none of the extras), every `storm-hf` command either runs or says what to
install before it starts. The optional packages are made unimportable here the way a missing package is."""

import configparser
import sys
from pathlib import Path

import pytest

from storm_hf.cli import COMMANDS, EXTRAS, main

OPTIONAL = ("accelerate", "datasets", "peft", "matplotlib")


@pytest.fixture
def plain_install(monkeypatch):
    for name in OPTIONAL:
        monkeypatch.setitem(sys.modules, name, None)  # `import name` fails, find_spec finds nothing


def test_the_extras_named_are_setup_cfg_s():
    setup = configparser.ConfigParser()
    setup.read(Path(__file__).resolve().parents[1] / "setup.cfg")
    extras = setup["options.extras_require"]
    install_requires = setup["options"]["install_requires"]
    for package, extra in EXTRAS.items():
        assert package in extras[extra] and package not in install_requires, package


@pytest.mark.parametrize(
    "argv, needed, extra",
    [
        (["benchmark", "e2e", "--scale", "tiny", "--frames", "4", "--repeats", "1"], "matplotlib", "bench"),
        (["evaluate-tiny", "--model", "storm=nowhere", "--test-size", "1"], "matplotlib", "bench"),
        (["train", "--model", "m", "--data", "d.jsonl"], "accelerate, datasets", "train"),
        (["train", "--model", "m", "--data", "d.jsonl", "--lora"], "accelerate, datasets, peft", "train"),
        (["train-tiny", "--max-steps", "1"], "accelerate", "train"),
        (["merge-lora", "base", "adapter"], "peft", "train"),
    ],
)
def test_a_command_that_needs_an_extra_says_so_before_it_starts(plain_install, tmp_path, capsys, argv, needed, extra):
    out = tmp_path / "out"
    argv = [*argv, *(["--out", str(out)] if argv[0] in ("benchmark", "train-tiny") else [])]
    argv += {"train": ["--output-dir", str(out)], "merge-lora": [str(out)], "evaluate-tiny": ["--json", str(out)]}.get(
        argv[0], []
    )
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert f"needs {needed} (not installed): pip install -e \".[{extra}]\"" in error
    assert not out.exists()  # nothing ran


def test_the_commands_without_extras_run_on_a_plain_install(plain_install, tmp_path, capsys):
    assert main(["make-data", str(tmp_path / "data"), "--n", "2"]) == 0
    assert main(["demo", "--index", "1000000"]) == 0
    assert "true answer:" in capsys.readouterr().out
    from storm_hf.tiny.recipe import SHIPPED_MODEL_DIR

    assert main(["export", str(SHIPPED_MODEL_DIR), str(tmp_path / "exported")]) == 0
    assert (tmp_path / "exported" / "modeling_storm.py").is_file()
    assert set(COMMANDS) == {"demo", "make-data", "convert", "export", "init", "train", "merge-lora", "train-tiny",
                             "ship-tiny", "evaluate-tiny", "benchmark"}  # a new command gets a line above
