"""Which implementation runs the Mamba layer's selective scan and causal convolution.

Three implementations: mamba_ssm's and causal_conv1d's CUDA kernels (`"mamba_ssm"`; compiled at install time), the
Triton kernels of `mamba_triton` (`"triton"`; compiled at the first call), and pure PyTorch (`"torch"`; any device).
`StormTemporalConfig.mamba_kernel` asks for one of them or for `"auto"`; the environment variable
`STORM_MAMBA_KERNEL` overrides the config. The choice is made per call, from where the tensors live and what is
installed:

- `"auto"`: pure PyTorch for CPU tensors; on CUDA, mamba_ssm's kernel when it can run the call, else Triton, else
  pure PyTorch (with a warning, once, that says why and how to install the kernels).
- an explicit choice runs that implementation or raises an error saying why it cannot (never a silent fallback).

Every choice is logged once (transformers' logger: `warning` for a fallback on CUDA, `info` otherwise).

Hub code: imports the standard library, transformers' logging and siblings in this folder.
"""

import functools
import importlib
import os

from transformers.utils import logging

from .configuration_storm import MAMBA_KERNELS as KERNELS
from .mamba_triton import interpreting
from .mamba_triton import unavailable_reason as triton_unavailable_reason

logger = logging.get_logger(__name__)

ENVIRONMENT_VARIABLE = "STORM_MAMBA_KERNEL"

# operation -> (PyPI package, its compiled CUDA extension, the module and function storm_hf calls)
_CUDA_KERNELS = {
    "selective_scan": (
        "mamba-ssm", "selective_scan_cuda", "mamba_ssm.ops.selective_scan_interface", "selective_scan_fn"
    ),
    "causal_conv1d": ("causal-conv1d", "causal_conv1d_cuda", "causal_conv1d", "causal_conv1d_fn"),
    # the single-step kernels transformers' Mamba decoding uses, for a stream's next tokens (mamba_streaming.py)
    "selective_state_update": (
        "mamba-ssm", "selective_scan_cuda", "mamba_ssm.ops.triton.selective_state_update", "selective_state_update"
    ),
    "causal_conv1d_update": ("causal-conv1d", "causal_conv1d_cuda", "causal_conv1d", "causal_conv1d_update"),
}
_INSTALL_CUDA_KERNELS = (
    'install mamba-ssm and causal-conv1d from a checkout of storm-hf, on a machine with a CUDA toolkit (nvcc): '
    '`pip install --no-build-isolation -e ".[cuda]"` (docs/kernels.md)'
)
_INSTALL_TRITON = "`pip install triton` (Linux wheels of torch for CUDA bring it along)"


def check_kernel_name(value, source: str) -> str:
    """`value` if it names an implementation, else a ValueError naming `source` and the choices."""
    if value not in KERNELS:
        raise ValueError(f"{source} must be one of {', '.join(map(repr, KERNELS))}, got {value!r}.")
    return value


def requested_kernel(configured: str) -> tuple[str, str]:
    """(the implementation asked for, where that comes from): the environment variable wins over the config."""
    from_environment = os.environ.get(ENVIRONMENT_VARIABLE)
    if from_environment:
        source = f"the environment variable {ENVIRONMENT_VARIABLE}={from_environment}"
        return check_kernel_name(from_environment, f"The environment variable {ENVIRONMENT_VARIABLE}"), source
    return check_kernel_name(configured, "StormTemporalConfig.mamba_kernel"), f"mamba_kernel={configured!r}"


@functools.cache
def cuda_kernel(operation: str):
    """(the CUDA kernel function of `operation`, None) or (None, why it cannot be used). Checks the compiled
    extension itself: a package built without it still imports, and its first call would raise."""
    package, extension, module, name = _CUDA_KERNELS[operation]
    try:
        function = getattr(importlib.import_module(module), name)
    except Exception as error:  # not installed, or built against another torch / CUDA
        return None, f"{package} cannot be imported ({type(error).__name__}: {error})"
    try:
        importlib.import_module(extension)
    except Exception as error:
        return None, f"{package} imports but its CUDA extension {extension} does not ({type(error).__name__}: {error})"
    return function, None


def _why_not(kernel: str, operation: str, tensor, unsupported: str | None) -> str | None:
    """Why `kernel` cannot run this call of `operation` (None if it can)."""
    if kernel == "mamba_ssm":
        if not tensor.is_cuda:
            return f"the tensors are on {tensor.device.type} and the mamba_ssm kernels run on CUDA only"
        return unsupported or cuda_kernel(operation)[1]
    return unsupported or triton_unavailable_reason(tensor)


def unavailable_reason(kernel: str, tensor) -> str | None:
    """Why `kernel` cannot run the Mamba layer (scan and convolution) on `tensor`'s device and dtype with what is
    installed here; None if it can."""
    if kernel == "torch":
        return None
    operations = ("selective_scan", "causal_conv1d") if kernel == "mamba_ssm" else ("selective_scan",)
    return next(filter(None, (_why_not(kernel, operation, tensor, None) for operation in operations)), None)


def _fix(kernel: str, tensor) -> str:
    if not tensor.is_cuda and not (kernel == "triton" and interpreting()):
        return (
            "The kernels run on CUDA tensors (Triton's also in its interpreter, with TRITON_INTERPRET=1 set before the "
            "first call); on the CPU choose mamba_kernel='auto' or 'torch'."
        )
    install = _INSTALL_CUDA_KERNELS if kernel == "mamba_ssm" else _INSTALL_TRITON
    return f"To use them, {install}; or choose mamba_kernel='auto'."


def choose_kernel(operation: str, configured: str, tensor, unsupported: dict[str, str | None]) -> str:
    """The implementation that runs this call of `operation` ("selective_scan" or "causal_conv1d"): "mamba_ssm",
    "triton" or "torch". `tensor` is the call's main input; `unsupported` maps a kernel to why it cannot take this
    call's arguments (a dtype, an initial state), if it cannot."""
    kernel, source = requested_kernel(configured)
    if kernel == "torch" or (kernel == "auto" and not tensor.is_cuda):
        why = source if kernel == "torch" else f"{source} and {tensor.device.type} tensors"
        logger.info_once(f"STORM's Mamba {operation} runs in pure PyTorch ({why}).")
        return "torch"
    candidates = ("mamba_ssm", "triton") if kernel == "auto" else (kernel,)
    reasons = {}
    for candidate in candidates:
        reason = _why_not(candidate, operation, tensor, unsupported.get(candidate))
        if reason is None:
            skipped = "".join(f"; not {name}: {why}" for name, why in reasons.items())
            log = logger.warning_once if reasons else logger.info_once
            log(f"STORM's Mamba {operation} runs with the {candidate} kernels ({source}{skipped}).")
            return candidate
        reasons[candidate] = reason
    if kernel != "auto":
        raise RuntimeError(
            f"{source} asks for the {kernel} kernels, but they cannot run this {operation} call: {reasons[kernel]}. "
            f"{_fix(kernel, tensor)}"
        )
    logger.warning_once(
        f"STORM's Mamba {operation} runs in pure PyTorch on CUDA, which is several times slower than a kernel "
        f"(not mamba_ssm: {reasons['mamba_ssm']}; not triton: {reasons['triton']}). For the CUDA kernels, "
        f"{_INSTALL_CUDA_KERNELS}; for the Triton kernels, {_INSTALL_TRITON}."
    )
    return "torch"


def step_kernel(operation: str, configured: str, tensor):
    """mamba_ssm's or causal_conv1d's single-step kernel (`operation`: "selective_state_update" or
    "causal_conv1d_update") for a stream's next tokens on CUDA, when the implementation asked for is "auto" or
    "mamba_ssm" and the kernel is installed; else None, and the tokens go through `selective_scan` /
    `causal_conv1d` from the carried state, which choose as above."""
    kernel, _ = requested_kernel(configured)
    if kernel not in ("auto", "mamba_ssm") or not tensor.is_cuda:
        return None
    return cuda_kernel(operation)[0]
