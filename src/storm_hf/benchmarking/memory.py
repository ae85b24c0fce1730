"""Peak memory between two points of a run, on CUDA (allocated tensors) or on the CPU (resident set size).

CUDA: `memory_allocated` and `max_memory_allocated`, whose peak `reset_peak_memory_stats` restarts.
CPU: the process's RSS and its high-water mark (`VmRSS`, `VmHWM` in /proc/self/status). Linux restarts the
high-water mark when "5" is written to /proc/self/clear_refs; elsewhere the mark only grows (`ru_maxrss`), so a
stage's peak is then the peak so far. Run each measurement in a fresh process so that the peak belongs to it.
"""

import resource
import sys
from pathlib import Path

import torch

_STATUS, _CLEAR_REFS = Path("/proc/self/status"), Path("/proc/self/clear_refs")


def _status_kib(field: str) -> int | None:
    if not _STATUS.exists():
        return None
    for line in _STATUS.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None


def rss_bytes() -> int:
    """Resident set size of this process now."""
    kib = _status_kib("VmRSS")
    return kib * 1024 if kib is not None else peak_rss_bytes()


def peak_rss_bytes() -> int:
    """Highest resident set size of this process since the last `reset_peak_rss` (or since it started)."""
    kib = _status_kib("VmHWM")
    if kib is not None:
        return kib * 1024
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss if sys.platform == "darwin" else maxrss * 1024  # bytes on macOS, KiB elsewhere


def reset_peak_rss() -> bool:
    """Restart the high-water mark at the current RSS where the kernel allows it (Linux); whether it could."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:  # not Linux, or a sandbox that does not let the process write its clear_refs
        return False
    return True


class MemoryProbe:
    """`mark()` returns (bytes in use at the previous mark, peak since then) and starts a new interval."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.device = device
        self._start = 0
        self.mark()

    def now(self) -> int:
        if self.cuda:
            torch.cuda.synchronize(self.device)
            return torch.cuda.memory_allocated(self.device)
        return rss_bytes()

    def peak(self) -> int:
        """Peak since the last mark (CUDA, Linux) or since the process started (elsewhere on the CPU)."""
        if self.cuda:
            torch.cuda.synchronize(self.device)
            return torch.cuda.max_memory_allocated(self.device)
        return peak_rss_bytes()

    def mark(self) -> tuple[int, int]:
        start, peak = self._start, self.peak()
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            reset_peak_rss()
        self._start = self.now()
        return start, peak
