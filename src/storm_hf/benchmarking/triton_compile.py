"""Compiling the Triton kernels for a GPU on a machine without one: Triton's compiler and the ptxas it ships build
them for a named architecture, so a kernel that the interpreter runs but the compiler rejects is caught on CPU, and
ptxas reports each kernel's registers and spills (what decides its occupancy) before any GPU time is spent.

    python -m storm_hf.benchmarking.triton_compile          # every kernel the Mamba blocks launch, for sm_90
"""

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time

# pointer arguments that hold activations (the model's dtype); every other pointer is fp32
_ACTIVATIONS = {
    "u_ptr", "delta_ptr", "B_ptr", "C_ptr", "z_ptr", "out_ptr", "dout_ptr", "du_ptr", "ddelta_ptr", "dz_ptr",
    "x_ptr", "w_ptr", "bias_ptr", "dx_ptr",
}  # fmt: skip


def mixer_variants(activation_dtype: str = "bf16", d_state: int = 16, width: int = 4) -> list[dict]:
    """The kernel variants a bidirectional Mamba block launches in training (the scan's forward pass saves its chunk
    states), with the configurations `mamba_triton` launches them with."""
    from ..modeling import mamba_triton, mamba_triton_kernels as kernels

    scan, conv = mamba_triton.SCAN_CONFIG, mamba_triton.CONV_CONFIG
    flags = dict(D_STATE=d_state, HAS_D=True, HAS_Z=False, HAS_BIAS=True, SOFTPLUS=True, BLOCK_N=d_state)
    conv_flags = dict(WIDTH=width, HAS_BIAS=True, HAS_INITIAL=False, SILU=True)
    scan_fwd = dict(HAS_INITIAL=False, SAVE_CHUNK_STATES=True, BLOCK_D=scan["block_dim"])
    return [
        dict(name="selective_scan_fwd", kernel=kernels.selective_scan_fwd_kernel, num_warps=scan["num_warps"],
             constexprs={**flags, **scan_fwd, "BLOCK_L": scan["chunk_size"]}),
        dict(name="selective_scan_bwd", kernel=kernels.selective_scan_bwd_kernel,
             num_warps=scan["num_warps_backward"],
             constexprs={**flags, "HAS_DLAST": True, "BLOCK_L": scan["chunk_size"],
                         "BLOCK_D": scan["block_dim_backward"]}),
        dict(name="causal_conv1d_fwd", kernel=kernels.causal_conv1d_fwd_kernel, num_warps=conv["num_warps"],
             constexprs={**conv_flags, "BLOCK_L": conv["block_length"], "BLOCK_D": conv["block_dim"]}),
        dict(name="causal_conv1d_bwd", kernel=kernels.causal_conv1d_bwd_kernel, num_warps=conv["num_warps_backward"],
             constexprs={**conv_flags, "BLOCK_L": conv["block_length_backward"],
                         "BLOCK_D": conv["block_dim_backward"]}),
    ]  # fmt: skip


def compile_kernel(kernel, constexprs: dict, num_warps: int, activation_dtype: str = "bf16", arch: int = 90):
    """The kernel compiled for sm_`arch` (no GPU needed); integer arguments as i32."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    signature = {}
    for name in kernel.arg_names:
        if name in constexprs:
            signature[name] = "constexpr"
        elif name.endswith("_ptr"):
            signature[name] = f"*{activation_dtype}" if name in _ACTIVATIONS else "*fp32"
        else:
            signature[name] = "i32"
    source = ASTSource(fn=kernel, signature=signature, constexprs=constexprs)
    return triton.compile(source, target=GPUTarget("cuda", arch, 32), options={"num_warps": num_warps})


def ptxas_report(compiled, arch: int = 90) -> dict:
    """Registers per thread and spill bytes, from `ptxas -v` on the kernel's PTX."""
    from triton.backends.nvidia.compiler import get_ptxas

    with tempfile.NamedTemporaryFile("w", suffix=".ptx") as ptx:
        ptx.write(compiled.asm["ptx"])
        ptx.flush()
        gpu = f"sm_{arch}a" if arch >= 90 else f"sm_{arch}"
        result = subprocess.run(
            [get_ptxas(arch).path, "--gpu-name", gpu, "-v", ptx.name, "-o", "/dev/null"],
            capture_output=True,
            text=True,
        )
    text = result.stdout + result.stderr
    registers = re.search(r"Used (\d+) registers", text)
    spills = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", text)
    return {
        "registers": int(registers.group(1)) if registers else None,
        "spill_store_bytes": int(spills.group(1)) if spills else None,
        "spill_load_bytes": int(spills.group(2)) if spills else None,
        "shared_bytes": compiled.metadata.shared,
    }


def report(activation_dtype: str = "bf16", arch: int = 90) -> list[dict]:
    rows = []
    for variant in mixer_variants(activation_dtype):
        start = time.perf_counter()
        kernel, constexprs, num_warps = variant["kernel"], variant["constexprs"], variant["num_warps"]
        compiled = compile_kernel(kernel, constexprs, num_warps, activation_dtype, arch)
        rows.append({
            "kernel": variant["name"],
            "num_warps": variant["num_warps"],
            "blocks": {k: v for k, v in variant["constexprs"].items() if k.startswith("BLOCK")},
            "compile_seconds": round(time.perf_counter() - start, 1),
            **ptxas_report(compiled, arch),
        })  # fmt: skip
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", type=int, default=90, help="compute capability x 10 (default 90: H100 / H200)")
    parser.add_argument("--dtype", default="bf16", choices=("bf16", "fp16", "fp32"), help="activations' dtype")
    parser.add_argument("--out", help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    rows = report(args.dtype, args.arch)
    for row in rows:
        print(
            f"{row['kernel']:20s} sm_{args.arch} {args.dtype}: {row['registers']} registers, "
            f"{row['spill_store_bytes']} B spilled, {row['shared_bytes']} B shared, blocks {row['blocks']}, "
            f"{row['num_warps']} warps, compiled in {row['compile_seconds']} s"
        )
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"arch": args.arch, "dtype": args.dtype, "kernels": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
