"""`python -m loadtest.startup`: seconds to ready and memory, with one pair and with all pairs.

For each pair in `--models` alone (its model and its `-fast` student, by CYCLEGAN_PACKAGES),
then for every package together, starts the service as `make serve` does, measures the
seconds from launch to the first `/readyz` 200 (every package loaded and warmed up), then the
RSS of the server's processes once ready and after one request per direction. Writes the
"Start-up and memory" section of BENCHMARKS.md. Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import httpx

from cyclegan.benchmarks_file import machine, write_section
from loadtest.benchmark import jpeg
from loadtest.probe import tree_rss
from loadtest.server import ROOT, start_server, stop_server, wait_until

log = logging.getLogger("loadtest.startup")
SECTION = "## 8. Start-up and memory"
MIB = 1024 * 1024


def packages_by_pair(models: Path) -> dict[str, list[str]]:
    """ "horse ↔ zebra" -> its package folders, from each package's model.json."""
    pairs: dict[str, list[str]] = defaultdict(list)
    for manifest in sorted(models.glob("*/model.json")):
        domains = json.loads(manifest.read_text())["domains"]
        pairs[" ↔ ".join(domains)].append(manifest.parent.name)
    return dict(pairs)


def one_start(models: Path, packages: list[str], workdir: Path) -> tuple[float, int, int]:
    """(seconds to ready, RSS when ready, RSS after one request per direction)."""
    began = time.perf_counter()
    server = start_server(models, workdir, {"CYCLEGAN_PACKAGES": ",".join(packages)})
    try:
        wait_until(server, "/readyz", 200, timeout=600)
        ready_s = time.perf_counter() - began
        ready_rss = tree_rss(server.process.pid)
        body = jpeg(256, 0)
        for direction in httpx.get(f"{server.url}/directions").json()["directions"]:
            answer = httpx.post(
                f"{server.url}/translate/{direction}", content=body,
                headers={"content-type": "image/jpeg"}, timeout=120,
            )  # fmt: skip
            answer.raise_for_status()
        return ready_s, ready_rss, tree_rss(server.process.pid)
    finally:
        stop_server(server)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.startup", description=__doc__)
    parser.add_argument("--models", type=Path, default=ROOT / "models")
    parser.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    parser.add_argument("--repeats", type=int, default=3, help="starts per row (median shown)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    pairs = packages_by_pair(args.models)
    if not pairs:
        log.error("%s: no model packages", args.models)
        return 2
    rows = {**pairs}
    if len(pairs) > 1:
        rows["every pair"] = [p for packages in pairs.values() for p in packages]
    load = os.getloadavg()[0]
    lines = [
        "| packages | directions | seconds to ready | RSS ready (MiB) | RSS after one each (MiB) |",
        "|---|---|---|---|---|",
    ]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for label, packages in rows.items():
            runs = [
                one_start(args.models, packages, Path(tmp) / f"{len(packages)}-{i}")
                for i in range(args.repeats)
            ]
            ready_s, ready_rss, used_rss = (statistics.median(r[i] for r in runs) for i in range(3))
            log.info("%s: ready in %.1f s, %.0f MiB", label, ready_s, used_rss / MIB)
            lines.append(
                f"| {label}: {', '.join(packages)} | {2 * len(packages)} | {ready_s:.1f} | "
                f"{ready_rss / MIB:.0f} | {used_rss / MIB:.0f} |"
            )
    now = datetime.datetime.now(datetime.UTC)
    write_section(args.out, SECTION, [
        SECTION, "",
        f"Written by `python -m loadtest.startup` on {now:%Y-%m-%d %H:%M} UTC. Machine: "
        f"{machine(load, ['onnxruntime', 'bentoml'])}. `python -m serving` as `make serve` runs "
        "it (one generator process, the CPU's INT8 graphs where they passed their gate), "
        "restricted by CYCLEGAN_PACKAGES; seconds from launch to the first `/readyz` 200 "
        "(every direction loaded and warmed up), RSS of all the server's processes; "
        f"median of {args.repeats} starts.", "",
        *lines, "",
    ])  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
