"""What the CPU computes natively, read from /proc/cpuinfo (empty where it cannot be read)."""

from __future__ import annotations

import platform
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
X86 = {"x86_64", "amd64", "i386", "i686"}


def cpu_flags(cpuinfo: Path = CPUINFO) -> set[str]:
    """The CPU's feature flags as Linux lists them (x86 `flags`, ARM `Features`)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set()
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return flags


def cpu_has_bf16(cpuinfo: Path = CPUINFO) -> bool:
    """Whether the CPU computes in bf16 natively (AVX-512 BF16 or AMX), so bf16 pays off."""
    return bool(cpu_flags(cpuinfo) & {"avx512_bf16", "amx_bf16"})


def x86_without_vnni(cpuinfo: Path = CPUINFO) -> bool:
    """Known to be an x86 CPU without 8-bit dot products (VNNI): there ONNX Runtime multiplies
    uint8 by int8 with 16-bit sums that saturate. False where the flags cannot be read."""
    flags = cpu_flags(cpuinfo)
    if platform.machine().lower() not in X86 or not flags:
        return False
    return not flags & {"avx512_vnni", "avx_vnni", "amx_int8"}
