"""What the CPU computes natively, read from /proc/cpuinfo (empty where it cannot be read)."""

from __future__ import annotations

from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


def cpu_flags(cpuinfo: Path = CPUINFO) -> set[str]:
    """The CPU's feature flags, as the kernel lists them."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set()
    return {flag for line in text.splitlines() if line.startswith("flags") for flag in line.split()}


def cpu_has_bf16(cpuinfo: Path = CPUINFO) -> bool:
    """Whether the CPU computes in bf16 natively (AVX-512 BF16 or AMX), so bf16 pays off."""
    return bool(cpu_flags(cpuinfo) & {"avx512_bf16", "amx_bf16"})


def cpu_has_vnni(cpuinfo: Path = CPUINFO) -> bool:
    """Whether the CPU has 8-bit dot products (VNNI), whose sums do not saturate at 16 bits."""
    return bool(cpu_flags(cpuinfo) & {"avx512_vnni", "avx_vnni", "amx_int8"})
