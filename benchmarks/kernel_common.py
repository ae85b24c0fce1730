"""What benchmarks/kernel_check.py and benchmarks/kernel_bench.py share: the CPU dry run (Triton's interpreter,
switched on before Triton decorates a kernel, so import this module first), the device, the kernels that can run
here, and the record of the machine."""

import argparse
import os
import sys

if "--cpu-dry-run" in sys.argv:
    os.environ["TRITON_INTERPRET"] = "1"

import torch  # noqa: E402

from storm_hf.benchmarking.report import machine_info  # noqa: E402
from storm_hf.modeling import mamba_triton  # noqa: E402
from storm_hf.modeling.kernel_choice import unavailable_reason  # noqa: E402


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("--kernels", nargs="+", default=["mamba_ssm", "triton", "torch"])
    parser.add_argument("--cpu-dry-run", action="store_true", help="toy sizes on CPU, Triton in its interpreter")
    parser.add_argument("--out", help=f"JSON file (default benchmarks/results/{name}-<device>.json)")


def device_for(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str:
    """cuda, or cpu for the dry run (with tiles small enough for the interpreter)."""
    if args.cpu_dry_run:
        mamba_triton.SCAN_CONFIG.update(chunk_size=16, block_dim=16, block_dim_backward=16)
        return "cpu"
    if not torch.cuda.is_available():
        parser.error("no CUDA device: pass --cpu-dry-run to run this on CPU at toy sizes")
    return "cuda"


def available_kernels(requested: list[str], device: str) -> tuple[list[str], dict]:
    """The requested kernels that can run here, and why each other one cannot (printed)."""
    reasons = {kernel: unavailable_reason(kernel, torch.empty(0, device=device)) for kernel in requested}
    for kernel, reason in reasons.items():
        if reason:
            print(f"{kernel}: left out ({reason})")
    return [k for k, reason in reasons.items() if reason is None], {k: r for k, r in reasons.items() if r}


def machine(device: str) -> dict:
    return {**machine_info(device), "cuda": torch.version.cuda, "triton_interpreter": mamba_triton.interpreting()}
