"""Pack a training set small enough to travel to a borrowed GPU machine.

`python -m training.tools.gpu_bundle --data DIR --out .gpu/data [--quality 70] [--budget-mib 36]`

The device tool copies the working tree, at most 64 MiB in all, and the repository is about
23 MiB of it; horse2zebra's train folders are 107 MB of JPEG. Re-encoded as WebP at quality 70
(256x256 images) they take 31 MiB, which leaves room for the wheels the device lacks.
Only trainA and trainB are packed: evaluation runs back here on the full test sets.
Refuses, writing nothing, when the result would exceed the budget.
"""

from __future__ import annotations

import argparse
import io
import logging
import shutil
import sys
import tempfile
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

log = logging.getLogger("training.tools.gpu_bundle")
SPLITS = ("trainA", "trainB")


class BundleError(Exception):
    """The data cannot be packed within the budget, or is not there."""


def webp_bytes(path: Path, quality: int) -> bytes | None:
    """The image re-encoded as RGB WebP, or None when it cannot be decoded."""
    try:
        with Image.open(path) as image:
            buffer = io.BytesIO()
            image.convert("RGB").save(buffer, "WEBP", quality=quality, method=4)
    except (UnidentifiedImageError, OSError):
        return None
    return buffer.getvalue()


def pack(data: Path, out: Path, quality: int, budget_bytes: int) -> dict[str, int]:
    """Write OUT/trainA and OUT/trainB as WebP; returns images per split. All or nothing."""
    missing = [split for split in SPLITS if not (data / split).is_dir()]
    if missing:
        raise BundleError(f"{data}: no {' or '.join(missing)} folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        counts, total = {}, 0
        for split in SPLITS:
            (staging / split).mkdir()
            files = sorted(p for p in (data / split).iterdir() if p.is_file())
            counts[split] = 0
            for file in tqdm(files, desc=split, unit="img"):
                encoded = webp_bytes(file, quality)
                if encoded is None:
                    log.warning("skipped %s: not a decodable image", file)
                    continue
                total += len(encoded)
                if total > budget_bytes:
                    raise BundleError(
                        f"over the budget of {budget_bytes / 2**20:.0f} MiB after "
                        f"{sum(counts.values())} images: lower --quality or raise --budget-mib"
                    )
                (staging / split / f"{file.stem}.webp").write_bytes(encoded)
                counts[split] += 1
        if out.exists():
            shutil.rmtree(out)
        staging.chmod(0o755)  # mkdtemp makes it private
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("%s: %s, %.1f MiB at WebP quality %d", out, counts, total / 2**20, quality)
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.tools.gpu_bundle", description=__doc__
    )
    parser.add_argument("--data", type=Path, required=True, help="folder with trainA/ and trainB/")
    parser.add_argument("--out", type=Path, required=True, help="where trainA/ and trainB/ go")
    parser.add_argument("--quality", type=int, default=70, help="WebP quality (70)")
    parser.add_argument("--budget-mib", type=float, default=36.0, help="size limit (36 MiB)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        pack(args.data, args.out, args.quality, int(args.budget_mib * 2**20))
    except BundleError as error:
        log.error("%s", error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
