"""Timing, peak-GEMM and peak-memory helpers for benchmarks run on a shared, noisy CPU."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from hf_beit.acceleration import bf16_available, int8_engine, onednn_available
from hf_beit.acceleration._packing import pack

# BEiT-base GEMMs at batch 8 (8 x 197 tokens): qkv, fc1, fc2.
GEMM_SHAPES = ((1576, 768, 2304), (1576, 768, 3072), (1576, 3072, 768))


@dataclass
class Timings:
    """Wall-clock seconds and minor page faults of every timed call of one benchmark entry."""

    seconds: list[float] = field(default_factory=list)
    page_faults: list[int] = field(default_factory=list)

    @property
    def best(self) -> float:
        return min(self.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def median_page_faults(self) -> float | None:
        return statistics.median(self.page_faults) if self.page_faults else None


def _minor_faults() -> int | None:
    """Minor page faults of this process so far (None where ``resource`` is missing, e.g. Windows)."""
    try:
        import resource
    except ImportError:
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def time_call(fn: Callable[[], object], timings: Timings) -> object:
    faults, start = _minor_faults(), time.perf_counter()
    result = fn()
    timings.seconds.append(time.perf_counter() - start)
    if faults is not None:
        timings.page_faults.append(_minor_faults() - faults)
    return result


def gemm_kernels() -> dict[str, Callable[[int, int, int], Callable[[], object]]]:
    """Builders of one GEMM call ``(M, K, N) -> fn`` for each matmul path worth knowing on this CPU."""

    def mkl_fp32(m, k, n):
        x, w, b = torch.randn(m, k), torch.randn(n, k), torch.randn(n)
        return lambda: F.linear(x, w, b)

    def packed(precision):
        def build(m, k, n):
            x, weight = torch.randn(m, k), pack(torch.randn(n, k) * 0.05, torch.randn(n), precision)
            x = x.bfloat16() if precision == "bf16" else x
            return lambda: weight.apply(x, None)

        return build

    def static_int8(m, k, n):
        weight = pack(torch.randn(n, k) * 0.05, torch.randn(n), "int8")
        x = torch.quantize_per_tensor(torch.rand(m, k), 1 / 255, 0, torch.quint8)
        return lambda: torch.ops.quantized.linear(x, weight.weight, 0.05, 128)

    kernels = {"fp32 F.linear (MKL)": mkl_fp32}
    if onednn_available():
        kernels["fp32 oneDNN packed"] = packed("fp32")
    if bf16_available():
        kernels["bf16 oneDNN packed"] = packed("bf16")
    if int8_engine() is not None:
        kernels["int8 dynamic (quantized.linear_dynamic)"] = packed("int8")
        kernels["int8 static (quantized.linear, activations pre-quantised)"] = static_int8
    return kernels


class GemmPeak:
    """Best GFLOP/s seen per kernel over BEiT-base shapes; ``probe()`` is called between model timings."""

    def __init__(self) -> None:
        self.calls = {(name, shape): build(*shape) for name, build in gemm_kernels().items() for shape in GEMM_SHAPES}
        self.best: dict[str, float] = {}
        self.best_shape: dict[str, tuple[int, int, int]] = {}

    def probe(self, repeats: int = 3) -> None:
        with torch.inference_mode():
            for (name, shape), fn in self.calls.items():
                fn()
                timings = Timings()
                for _ in range(repeats):
                    time_call(fn, timings)
                rate = 2 * shape[0] * shape[1] * shape[2] / timings.best / 1e9
                if rate > self.best.get(name, 0.0):
                    self.best[name], self.best_shape[name] = rate, shape

    def peak(self, prefix: str) -> float:
        """Fastest rate among the kernels whose name starts with ``prefix`` (``"fp32"``, ``"bf16"``, ``"int8"``)."""
        rates = [rate for name, rate in self.best.items() if name.startswith(prefix)]
        return max(rates) if rates else float("nan")


class MemoryMeter:
    """Peak resident memory of a call above the RSS before it (Linux ``VmHWM`` reset via ``clear_refs``).

    Every allocation above 128 KiB is made to use its own mapping (``mallopt``) and freed memory is trimmed before
    measuring, so RSS follows live tensors instead of what glibc keeps around.
    """

    def __init__(self) -> None:
        self.available = False
        with contextlib.suppress(OSError, AttributeError):
            self._libc = ctypes.CDLL("libc.so.6")
            self._libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD: fixed, so large blocks return to the OS
            self._reset()
            self.available = True

    @staticmethod
    def _status(field_name: str) -> int:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1]) * 1024
        raise OSError(f"{field_name} not in /proc/self/status")

    def _reset(self) -> None:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")

    def resident(self) -> int:
        gc.collect()
        self._libc.malloc_trim(0)
        return self._status("VmRSS")

    def peak_during(self, fn: Callable[[], object]) -> int | None:
        """Bytes above the current RSS that ``fn`` needed at its peak (None where unsupported)."""
        if not self.available:
            return None
        before = self.resident()
        self._reset()
        fn()
        return max(self._status("VmHWM") - before, 0)
