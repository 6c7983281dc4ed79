"""The service against what a user would otherwise run: the reference CycleGAN's test loop.

The reference's `test.py` translates a folder one image at a time in PyTorch eager mode: read
the file, resize to 256x256, translate, save a PNG. `reference_loop` is that loop, written here
(not the service's code) around the same generator weights; it runs in its own process
(`python -m loadtest.reference`), as a user's script would, so the benchmark itself stays an
HTTP client. `service_run` posts the same files to the running service from `clients` threads
and saves the PNGs it returns. Both are timed end to end, files in and files out, in alternating
rounds so that a swing of the CPU hits both.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import itertools
import json
import logging
import mimetypes
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

log = logging.getLogger("loadtest.reference")
REFERENCE_SIZE = 256  # the reference's --load_size for testing
TARGET = 1.5  # the service with 4 clients / the loop, on the same images


@dataclass(frozen=True)
class Comparison:
    images: int
    loop_images_per_second: list[float]  # one figure per round
    service_images_per_second: list[float]
    clients: int

    @property
    def ratio(self) -> float:
        """Best round against best round: each side's figure on its least disturbed run."""
        return max(self.service_images_per_second) / max(self.loop_images_per_second)


def reference_loop(package_dir: Path, direction: str, images: list[Path], out: Path) -> float:
    """images/s of the reference's loop: PyTorch eager, batch 1, at the default thread count."""
    import torch

    from cyclegan.package import load_package

    net = load_package(package_dir).load_generator(direction).eval()
    out.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    with torch.inference_mode():
        for index, path in enumerate(images):
            with Image.open(path) as image:
                rgb = image.convert("RGB").resize((REFERENCE_SIZE, REFERENCE_SIZE), Image.BICUBIC)
            pixels = torch.from_numpy(np.asarray(rgb)).permute(2, 0, 1).float()
            fake = net((pixels / 127.5 - 1).unsqueeze(0))[0]
            result = ((fake.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
            Image.fromarray(result.permute(1, 2, 0).numpy()).save(out / f"{index:04d}.png")
    return len(images) / (time.perf_counter() - began)


def service_run(url: str, images: list[Path], out: Path, clients: int) -> float:
    """images/s of the service: `clients` threads post the files and save the answers."""
    out.mkdir(parents=True, exist_ok=True)
    work = iter(enumerate(images))
    lock = threading.Lock()  # the shared iterator is not thread-safe

    def client() -> None:
        with httpx.Client(timeout=120) as http:
            while True:
                with lock:
                    item = next(work, None)
                if item is None:
                    return
                index, path = item
                kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                response = http.post(url, content=path.read_bytes(), headers={"content-type": kind})
                response.raise_for_status()
                (out / f"{index:04d}.png").write_bytes(response.content)

    began = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(client) for _ in range(clients)]:
            future.result()
    return len(images) / (time.perf_counter() - began)


def run_loop(package_dir: Path, direction: str, images: list[Path], out: Path) -> float:
    """`reference_loop` in a fresh process (torch's import and start-up are not timed)."""
    listing = out.with_suffix(".txt")
    listing.parent.mkdir(parents=True, exist_ok=True)
    listing.write_text("\n".join(str(path) for path in images))
    command = [
        sys.executable, "-m", "loadtest.reference", "--package", str(package_dir),
        "--direction", direction, "--images", str(listing), "--out", str(out),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return float(json.loads(done.stdout.strip().splitlines()[-1])["images_per_second"])


def compare(
    package_dir: Path, direction: str, url: str, images: list[Path], workdir: Path,
    rounds: int = 2, clients: int = 4,
) -> Comparison:  # fmt: skip
    """Alternating rounds of the loop and the service (already running at `url`)."""
    loop, service = [], []
    service_run(url, images[:clients], workdir / "warm-up", clients)
    for round_index in range(rounds):
        loop.append(run_loop(package_dir, direction, images, workdir / f"loop-{round_index}"))
        service.append(service_run(url, images, workdir / f"service-{round_index}", clients))
        log.info(
            "round %d: loop %.2f img/s, service (%d clients) %.2f img/s",
            round_index + 1, loop[-1], clients, service[-1],
        )  # fmt: skip
    return Comparison(len(images), loop, service, clients)


def comparison_lines(results: dict[str, Comparison], direction: str, source: str) -> list[str]:
    """One row per service configuration (label -> its rounds against the loop)."""
    first = next(iter(results.values()))
    lines = [
        f"{direction} on {first.images} images of {source}, files in and PNG files out. The "
        "loop: the reference CycleGAN's `test.py` way (PyTorch eager, fp32, batch 1, resize to "
        "256, save PNG), written in `loadtest/reference.py`. The service: "
        f"{first.clients} clients posting the same files. Each service configuration runs "
        "in rounds alternating with the loop; best round of each:", "",
        "| service | rounds (loop / service img/s) | reference loop img/s | service img/s | "
        f"ratio (target >= {TARGET}) |",
        "|---|---|---|---|---|",
    ]  # fmt: skip
    for label, result in results.items():
        rounds = ", ".join(
            f"{a:.2f} / {b:.2f}"
            for a, b in itertools.zip_longest(
                result.loop_images_per_second, result.service_images_per_second
            )
        )
        lines.append(
            f"| {label} | {rounds} | {max(result.loop_images_per_second):.2f} | "
            f"{max(result.service_images_per_second):.2f} | {result.ratio:.3f} |"
        )
    lines.append("")
    for label, result in results.items():
        verdict = "meets" if result.ratio >= TARGET else "misses"
        lines.append(f"- {label}: the ratio {verdict} the target.")
    return [*lines, ""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.reference", description=__doc__)
    parser.add_argument("--package", type=Path, required=True)
    parser.add_argument("--direction", required=True)
    parser.add_argument("--images", type=Path, required=True, help="a file listing image paths")
    parser.add_argument("--out", type=Path, required=True, help="where the PNGs go")
    args = parser.parse_args(argv)
    images = [Path(line) for line in args.images.read_text().splitlines() if line]
    rate = reference_loop(args.package, args.direction, images, args.out)
    sys.stdout.write(json.dumps({"images_per_second": rate}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
