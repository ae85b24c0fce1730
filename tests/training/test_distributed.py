"""Data-parallel training as users launch it, with `torchrun` and `accelerate launch`: two CPU processes (gloo) on
127.0.0.1 run the real `storm-hf train` command; both finish with bit-identical weights and the loss falls."""

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from storm_hf import StormForConditionalGeneration
from storm_hf.training.trainer import weights_fingerprint

from test_training import mean_loss
from training_rows import NUM_FRAMES

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def train_argv(storm_folder, data_file, max_length, out) -> list[str]:
    return [
        "-m", "storm_hf.cli", "train", "--model", str(storm_folder), "--data", str(data_file),
        "--output-dir", str(out), "--num-frames", str(NUM_FRAMES), "--max-length", str(max_length),
        "--max-steps", "6", "--batch-size", "1", "--learning-rate", "1e-2", "--num-workers", "0",
        "--logging-steps", "1", "--save-steps", "100", "--seed", "0",
    ]  # fmt: skip


LAUNCHERS = {
    "torchrun": lambda port: [str(BIN / "torchrun"), "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
                              "--master_port", str(port)],
    "accelerate": lambda port: [str(BIN / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2",
                                "--num_machines", "1", "--main_process_ip", "127.0.0.1",
                                "--main_process_port", str(port), "--mixed_precision", "no", "--dynamo_backend", "no"],
}  # fmt: skip


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_two_processes_train_to_identical_weights_and_the_loss_falls(
    launcher, storm_folder, data_file, dataset, processor, max_length, tmp_path
):
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    command = LAUNCHERS[launcher](free_port()) + train_argv(storm_folder, data_file, max_length, out)
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-5000:])
    # the check every run makes at the end: each process's weights fingerprint, gathered over the process group
    agreed = re.search(r"weights identical on all 2 processes \(sha256 ([0-9a-f]{12})\)", result.stdout)
    assert agreed, result.stdout[-3000:]
    saved = StormForConditionalGeneration.from_pretrained(out / "model")
    assert weights_fingerprint(saved)[:12] == agreed.group(1)  # what was saved is what every process held
    rows = [row for row in dataset if row["id"] != "long"]
    before = mean_loss(StormForConditionalGeneration.from_pretrained(storm_folder), processor, rows)
    after = mean_loss(saved, processor, rows)
    assert after < 0.8 * before, (before, after)


_DESYNCHRONISED = """
import sys
import torch
from storm_hf.training.arguments import StormTrainingArguments
from storm_hf.training.trainer import verify_replicas_agree

args = StormTrainingArguments(output_dir=sys.argv[1], report_to=[])  # joins the launcher's process group
model = torch.nn.Linear(3, 2)
torch.nn.init.constant_(model.weight, 1.0 + args.process_index)  # the two processes disagree


class Trainer:  # the parts of a StormTrainer that verify_replicas_agree reads
    is_fsdp_enabled = False

    class accelerator:
        unwrap_model = staticmethod(lambda module: module)

    def is_world_process_zero(self):
        return args.process_index == 0


Trainer.args, Trainer.model = args, model
try:
    verify_replicas_agree(Trainer())
except RuntimeError as error:
    sys.stdout.write(f"refused: {error}\\n")  # one write: the two processes share the pipe
    sys.stdout.flush()
torch.distributed.destroy_process_group()  # an undestroyed gloo group can abort the process at exit
"""


def test_processes_that_disagree_are_refused(tmp_path):
    script = tmp_path / "desync.py"
    script.write_text(_DESYNCHRONISED)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [str(BIN / "torchrun"), "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port",
               str(free_port()), str(script), str(tmp_path / "out")]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("refused: The data-parallel processes ended training with different weights") == 2


def test_the_fingerprint_changes_with_any_weight(tiny_config):
    torch.manual_seed(0)
    model = StormForConditionalGeneration(tiny_config())
    before = weights_fingerprint(model)
    assert weights_fingerprint(model) == before
    with torch.no_grad():
        model.model.temporal_encoder.layers[1].mixer.D_b[3] += 1e-6
    assert weights_fingerprint(model) != before
