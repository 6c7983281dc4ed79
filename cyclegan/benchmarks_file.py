"""BENCHMARKS.md as the benchmarks write it: one `## ` section per command, and the machine line.

Standard library only: the HTTP-client benchmarks (loadtest/) use it without any runtime.
"""

from __future__ import annotations

import importlib
import os
import platform
import re
from pathlib import Path


def write_section(path: Path, heading: str, lines: list[str]) -> None:
    """Replace the section of `path` whose heading starts with `heading` (or append it).

    A section runs from its `## ` heading to the next one; the rest of the file is kept.
    """
    text = path.read_text() if path.is_file() else "# Benchmarks\n"
    section = "\n".join(lines).rstrip() + "\n"
    found = re.search(rf"^{re.escape(heading)}.*?(?=^## |\Z)", text, re.M | re.S)
    if found:
        rest = text[found.end() :]
        text = text[: found.start()] + section + ("\n" + rest if rest else "")
    else:
        text = text.rstrip() + "\n\n" + section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def machine(load: float, modules: list[str]) -> str:
    """CPU, cores, the load average at the start and the versions of `modules` (imported)."""
    cpu = "unknown CPU"
    if Path("/proc/cpuinfo").is_file():
        found = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        cpu = found.group(1) if found else cpu
    versions = "".join(f", {name} {importlib.import_module(name).__version__}" for name in modules)
    return (
        f"{cpu}, {os.cpu_count()} cores (load average {load:.1f} at the start: "
        f"other jobs share them); Python {platform.python_version()}{versions}"
    )
