"""Which implementation runs the Mamba scan and convolution: the config / environment setting, the checks of what is
installed (with importable stand-in packages for mamba_ssm and causal_conv1d, built with and without their CUDA
extensions), the errors of an explicit choice that cannot run, and the log lines."""

import importlib.abc
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest
import torch
import transformers.utils.logging as transformers_logging
from scan_testing import assert_exact, make_inputs
from transformers.testing_utils import CaptureLogger

from storm_hf.modeling import kernel_choice, mamba_scan, modeling_storm
from storm_hf.modeling.configuration_storm import StormTemporalConfig
from storm_hf.modeling.mamba_scan import (
    causal_conv1d,
    causal_conv1d_shifted,
    selective_scan,
    selective_scan_reference,
)

# a stand-in for a CUDA tensor: the choice reads only these attributes (this machine may have no GPU)
CUDA_FP32 = types.SimpleNamespace(is_cuda=True, device=torch.device("cuda"), dtype=torch.float32)
CUDA_FP64 = types.SimpleNamespace(is_cuda=True, device=torch.device("cuda"), dtype=torch.float64)
FAKE_MODULES = ("mamba_ssm", "causal_conv1d", "selective_scan_cuda", "causal_conv1d_cuda")

# As in mamba_ssm's main branch, which builds its CUDA extension only on request: the package imports without it
# and the first call raises.
SELECTIVE_SCAN_INTERFACE = """
try:
    import selective_scan_cuda
except ImportError:
    selective_scan_cuda = None


def selective_scan_fn(*args, **kwargs):
    if selective_scan_cuda is None:
        raise RuntimeError("selective_scan_cuda is not installed")
    raise NotImplementedError("a stand-in")
"""
# As in causal_conv1d, which imports its extension at import time.
CAUSAL_CONV1D = """
import causal_conv1d_cuda


def causal_conv1d_fn(*args, **kwargs):
    raise NotImplementedError("a stand-in")
"""


def write_kernel_packages(folder, with_extensions: bool):
    """Importable mamba_ssm and causal_conv1d packages in `folder`, with or without their compiled extensions."""
    for package in ("mamba_ssm", "mamba_ssm/ops"):
        (folder / package).mkdir(parents=True)
        (folder / package / "__init__.py").write_text("")
    (folder / "mamba_ssm/ops/selective_scan_interface.py").write_text(SELECTIVE_SCAN_INTERFACE)
    (folder / "causal_conv1d").mkdir()
    (folder / "causal_conv1d/__init__.py").write_text(CAUSAL_CONV1D)
    if with_extensions:
        (folder / "selective_scan_cuda.py").write_text("fwd = bwd = None\n")
        (folder / "causal_conv1d_cuda.py").write_text("causal_conv1d_fwd = None\n")
    return folder


@pytest.fixture
def fresh_choice(monkeypatch):
    """No environment override, and caches cleared: kernel checks, and the log lines already printed once."""
    monkeypatch.delenv(kernel_choice.ENVIRONMENT_VARIABLE, raising=False)
    caches = (kernel_choice.cuda_kernel, transformers_logging.warning_once, transformers_logging.info_once)
    for cache in caches:
        cache.cache_clear()
    yield
    for cache in caches:
        cache.cache_clear()


class _Without(importlib.abc.MetaPathFinder):
    """Finds none of `names`, also where the real ones are installed (a machine with the kernels built)."""

    def __init__(self, names):
        self.names = names

    def find_spec(self, name, path=None, target=None):
        if name in self.names:
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None


@pytest.fixture
def kernel_packages(tmp_path, monkeypatch, fresh_choice):
    """install(with_extensions) puts stand-in kernel packages first on sys.path; removed from sys.modules after."""

    def install(with_extensions: bool):
        monkeypatch.syspath_prepend(str(write_kernel_packages(tmp_path / str(with_extensions), with_extensions)))
        if not with_extensions:
            monkeypatch.setattr(sys, "meta_path", [_Without(FAKE_MODULES[2:]), *sys.meta_path])

    yield install
    for name in list(sys.modules):
        if name.split(".")[0] in FAKE_MODULES:
            del sys.modules[name]


def test_a_package_without_its_cuda_extension_is_not_a_kernel(kernel_packages):
    kernel_packages(with_extensions=False)
    for operation, extension in (("selective_scan", "selective_scan_cuda"), ("causal_conv1d", "causal_conv1d_cuda")):
        function, reason = kernel_choice.cuda_kernel(operation)
        assert function is None and extension in reason, reason
    # mamba_ssm itself imports fine: only checking the extension tells
    assert kernel_choice.cuda_kernel("selective_scan")[1].startswith("mamba-ssm imports but its CUDA extension")


def test_a_package_with_its_cuda_extension_is_a_kernel(kernel_packages):
    kernel_packages(with_extensions=True)
    for operation, name in (("selective_scan", "selective_scan_fn"), ("causal_conv1d", "causal_conv1d_fn")):
        function, reason = kernel_choice.cuda_kernel(operation)
        assert reason is None and function.__name__ == name


def test_auto_on_cuda_falls_back_to_triton_and_says_why_once(kernel_packages):
    kernel_packages(with_extensions=False)
    with CaptureLogger(kernel_choice.logger) as captured:
        for _ in range(3):
            assert kernel_choice.choose_kernel("selective_scan", "auto", CUDA_FP32, {}) == "triton"
    assert captured.out.count("\n") == 1
    assert "runs with the triton kernels" in captured.out and "selective_scan_cuda" in captured.out


def test_auto_on_cuda_falls_back_to_pytorch_with_install_commands_once(kernel_packages):
    kernel_packages(with_extensions=False)
    with CaptureLogger(kernel_choice.logger) as captured:
        for _ in range(3):  # float64: neither kernel takes it
            assert kernel_choice.choose_kernel("causal_conv1d", "auto", CUDA_FP64, {"mamba_ssm": "x"}) == "torch"
    assert captured.out.count("\n") == 1
    assert "pure PyTorch on CUDA" in captured.out
    assert 'pip install --no-build-isolation -e ".[cuda]"' in captured.out and "pip install triton" in captured.out


def test_auto_on_cuda_takes_mamba_ssm_when_its_extension_is_built(kernel_packages):
    kernel_packages(with_extensions=True)
    assert kernel_choice.choose_kernel("selective_scan", "auto", CUDA_FP32, {"mamba_ssm": None}) == "mamba_ssm"
    # a call it cannot take goes to Triton
    unsupported = {"mamba_ssm": "an initial state"}
    assert kernel_choice.choose_kernel("selective_scan", "auto", CUDA_FP32, unsupported) == "triton"


def test_an_explicit_choice_that_cannot_run_raises(kernel_packages, monkeypatch):
    kernel_packages(with_extensions=False)
    inputs = make_inputs(1, 8, 4, 10)
    with pytest.raises(RuntimeError, match=r"mamba_kernel='mamba_ssm'.*CUDA only.*choose mamba_kernel='auto' or"):
        selective_scan(**inputs, kernel="mamba_ssm")
    with pytest.raises(RuntimeError, match=r"extension selective_scan_cuda.*pip install --no-build-isolation"):
        kernel_choice.choose_kernel("selective_scan", "mamba_ssm", CUDA_FP32, {})
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(RuntimeError, match=r"triton kernels.*on cpu.*TRITON_INTERPRET=1"):
        causal_conv1d(torch.randn(1, 8, 10), torch.randn(8, 4), kernel="triton")


def test_the_environment_variable_overrides_the_config(fresh_choice, monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.setenv(kernel_choice.ENVIRONMENT_VARIABLE, "triton")
    ran = []
    monkeypatch.setattr(mamba_scan, "selective_scan_triton", lambda *args, **kwargs: ran.append("triton"))
    selective_scan(**make_inputs(1, 8, 4, 10), kernel="torch")
    assert ran == ["triton"]
    monkeypatch.setenv(kernel_choice.ENVIRONMENT_VARIABLE, "cuda")
    with pytest.raises(ValueError, match="STORM_MAMBA_KERNEL must be one of 'auto', 'mamba_ssm', 'triton', 'torch'"):
        selective_scan(**make_inputs(1, 8, 4, 10))


def test_cpu_tensors_never_look_for_kernels(fresh_choice, monkeypatch):
    def no_lookup(*args):
        raise AssertionError("looked for a kernel for CPU tensors")

    monkeypatch.setattr(kernel_choice, "cuda_kernel", no_lookup)
    monkeypatch.setattr(kernel_choice, "triton_unavailable_reason", no_lookup)
    inputs = make_inputs(1, 8, 4, 10)
    assert_exact(selective_scan(**inputs), selective_scan_reference(**inputs))
    x, weight = torch.randn(1, 8, 10), torch.randn(8, 4)
    assert torch.equal(causal_conv1d(x, weight), causal_conv1d_shifted(x, weight))


def test_the_config_refuses_an_unknown_kernel():
    assert StormTemporalConfig().mamba_kernel == "auto"
    with pytest.raises(ValueError, match="mamba_kernel must be one of 'auto', 'mamba_ssm', 'triton', 'torch'"):
        StormTemporalConfig(mamba_kernel="cuda")


def test_a_model_on_the_cpu_imports_no_kernel_module(tmp_path):
    # Kernel packages with their extensions are importable, yet a forward pass on the CPU touches none of them, nor
    # the module that decorates the Triton kernels.
    folder = write_kernel_packages(tmp_path, with_extensions=True)
    script = textwrap.dedent(
        """
        import sys, torch
        from storm_hf.modeling.configuration_storm import StormTemporalConfig
        from storm_hf.modeling.modeling_storm import StormTemporalEncoder

        encoder = StormTemporalEncoder(StormTemporalConfig(vision_hidden_size=8, hidden_size=16, d_state=4))
        encoder(torch.randn(1, 4, 4, 4, 8))
        watched = ("mamba_ssm", "causal_conv1d", "selective_scan_cuda", "causal_conv1d_cuda")
        print(sorted(name for name in sys.modules if name.split(".")[0] in watched or "mamba_triton_kernels" in name))
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), *sys.path])}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_hub_code_carries_the_kernel_modules():
    # transformers copies a remote-code module's `from .x import` siblings, recursively; `from . import x` it misses
    from transformers.dynamic_module_utils import get_relative_import_files

    files = {Path(name).name for name in get_relative_import_files(modeling_storm.__file__)}
    assert {"kernel_choice.py", "mamba_scan.py", "mamba_triton.py", "mamba_triton_kernels.py"} <= files
