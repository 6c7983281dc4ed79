"""`python -m training.tools.datasets fetch NAME --to DIR`: download a public CycleGAN data set.

Downloads NAME.zip from the address the CycleGAN authors publish (`--base-url` points it
elsewhere, e.g. a mirror or a test server), checks the archive and unpacks its trainA, trainB,
testA and testB folders into DIR, the layout `python -m training train --data DIR` reads.

The checks, all before anything lands in DIR: a real zip archive within the size limits
(download, unpacked total, member count); no member with an absolute path, a `..` part, a
backslash or drive letter, no links or device files, no encryption; all four folders present
with files in them; every member's CRC-32 while unpacking. Unpacking goes to a temporary folder
beside DIR that is renamed to DIR only when everything passed, so a failed fetch leaves nothing.

What arrives must be what was published. The authors publish no checksums, but for the two
sets this project uses, horse2zebra and summer2winter_yosemite, the project's record of each
(shared/data/NAME/SOURCE.md) gives a digest of its file listing, pinned below: the unpacked
files must match it, or the fetch is refused and nothing is kept. For the other sets, pass
`--sha256` to check the archive against a digest you trust; both digests are logged and written
to DIR/SOURCE.json. Plain http, which anyone on the way can alter, is refused unless
`--allow-http` (a local mirror, a test server).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import logging
import os
import shutil
import stat
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from tqdm import tqdm

log = logging.getLogger("training.tools.datasets")

BASE_URL = "https://efrosgans.eecs.berkeley.edu/cyclegan/datasets"
# The unpaired sets of the reference CycleGAN's download script that have all four folders.
DATASETS = (
    "apple2orange",
    "summer2winter_yosemite",
    "horse2zebra",
    "monet2photo",
    "cezanne2photo",
    "ukiyoe2photo",
    "vangogh2photo",
    "maps",
    "facades",
    "iphone2dslr_flower",
)
SPLITS = ("trainA", "trainB", "testA", "testB")
# What shared/data/NAME/SOURCE.md gives for the set, run in its folder:
# find trainA trainB testA testB -type f | LC_ALL=C sort | xargs -d '\n' sha256sum | sha256sum
LISTING_SHA256 = {
    "horse2zebra": "fb1d1fb79192dfee03e9a251d2e64dbfb4039fda7204196f9c16784a9e153408",
    "summer2winter_yosemite": "b9ae5c09ae078ba93412c4e9f960f38fca80dc715ae84a67dd8cee1f66698b80",
}
CHUNK = 1 << 20


class DatasetError(RuntimeError):
    """A download or archive that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class Limits:
    # The largest of the published archives is a few hundred MB: these leave room and still
    # stop a hostile server or a zip bomb from filling the disk.
    download_bytes: int = 2 << 30
    unpacked_bytes: int = 4 << 30
    members: int = 100_000


def check_address(url: str, allow_http: bool) -> None:
    """Refuse anything but https, and plain http unless it was asked for."""
    if url.startswith("http://") and not allow_http:
        raise DatasetError(
            f"{url}: plain http can be altered on the way; use https, or pass --allow-http "
            "(e.g. for a local mirror)"
        )
    if not url.startswith(("https://", "http://")):
        raise DatasetError(f"{url}: only http(s) addresses are fetched")


def download(
    url: str, dest: Path, max_bytes: int, allow_http: bool = False, timeout: float = 60
) -> str:
    """Stream `url` into `dest` with a progress bar; returns the sha256 of what was written."""
    check_address(url, allow_http)
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            check_address(response.geturl(), allow_http)  # after any redirect
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            if total is not None and total > max_bytes:
                raise DatasetError(f"{url}: {total} bytes is over the limit of {max_bytes}")
            written = 0
            with (
                open(dest, "wb") as out,
                tqdm(
                    total=total, unit="B", unit_scale=True, unit_divisor=1024,
                    desc=url.rsplit("/", 1)[-1], disable=None,  # no bar when not a terminal
                ) as bar,
            ):  # fmt: skip
                while chunk := response.read(CHUNK):
                    written += len(chunk)
                    if written > max_bytes:  # a server may omit or misstate Content-Length
                        raise DatasetError(f"{url}: more than the limit of {max_bytes} bytes")
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as error:
        raise DatasetError(f"{url}: HTTP {error.code} {error.reason}") from error
    except (http.client.HTTPException, OSError) as error:  # URLError and timeouts too
        raise DatasetError(f"{url}: download failed ({error})") from error
    if total is not None and written != total:
        raise DatasetError(f"{url}: got {written} of {total} bytes (connection cut?)")
    log.info("downloaded %s: %d bytes, sha256 %s", url, written, digest.hexdigest())
    return digest.hexdigest()


def _unsafe(name: str) -> str | None:
    """Why a member name could write outside the target folder, or None when it is safe."""
    path = PurePosixPath(name)
    if "\\" in name:
        return "a backslash"
    if path.is_absolute():
        return "an absolute path"
    if ".." in path.parts:
        return "a '..' part"
    if path.parts and ":" in path.parts[0]:
        return "a drive letter"
    return None


def plan_unpack(
    archive: zipfile.ZipFile, name: str, limits: Limits
) -> list[tuple[zipfile.ZipInfo, str]]:
    """(member, "split/file") for every image file to unpack; raises DatasetError on a bad archive.

    The published archives hold NAME/trainA/... ; an archive with the four folders at its top
    is accepted too. Files elsewhere (e.g. macOS metadata) are skipped.
    """
    members = archive.infolist()
    if len(members) > limits.members:
        raise DatasetError(f"{len(members)} members, over the limit of {limits.members}")
    unpacked = sum(info.file_size for info in members)
    if unpacked > limits.unpacked_bytes:
        raise DatasetError(
            f"unpacks to {unpacked} bytes, over the limit of {limits.unpacked_bytes}"
        )
    plan: list[tuple[zipfile.ZipInfo, str]] = []
    targets: set[str] = set()
    skipped = 0
    for info in members:
        if reason := _unsafe(info.filename):
            raise DatasetError(f"member {info.filename!r} has {reason}: refused")
        kind = stat.S_IFMT(info.external_attr >> 16)
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):  # 0: no Unix mode recorded
            raise DatasetError(f"member {info.filename!r} is a link or special file: refused")
        if info.flag_bits & 0x1:
            raise DatasetError(f"member {info.filename!r} is encrypted: refused")
        if info.is_dir():
            continue
        parts = PurePosixPath(info.filename).parts
        if parts and parts[0] == name:
            parts = parts[1:]
        if len(parts) != 2 or parts[0] not in SPLITS or parts[1].startswith("."):
            skipped += 1
            continue
        target = f"{parts[0]}/{parts[1]}"
        if target in targets:
            raise DatasetError(f"member {info.filename!r} appears twice: refused")
        targets.add(target)
        plan.append((info, target))
    if skipped:
        log.info("skipping %d archive members outside %s", skipped, ", ".join(SPLITS))
    found = {target.split("/")[0] for _, target in plan}
    missing = [split for split in SPLITS if split not in found]
    if missing:
        raise DatasetError(
            f"no files in {', '.join(missing)}: expected {name}/trainA, trainB, testA, testB"
        )
    return plan


def unpack(archive: zipfile.ZipFile, plan: list[tuple[zipfile.ZipInfo, str]], dest: Path) -> None:
    """Write the planned members under `dest`. Reading a member to its end checks its CRC-32
    (zipfile raises BadZipFile on a mismatch), and it never yields more than its declared size."""
    for split in SPLITS:
        (dest / split).mkdir(parents=True, exist_ok=True)
    for info, target in tqdm(plan, desc="unpacking", unit="file", disable=None):
        path = dest / target
        if not path.resolve().is_relative_to(dest.resolve()):  # belt and braces after _unsafe
            raise DatasetError(f"member {info.filename!r} would land outside {dest}")
        with archive.open(info) as source, open(path, "xb") as out:
            shutil.copyfileobj(source, out, CHUNK)


def listing_sha256(folder: Path) -> str:
    """The digest SOURCE.md gives for a set: the sha256 of `sha256sum`'s lines for every file of
    the four split folders, in the byte order of their paths (`trainA/x.jpg`)."""
    paths = sorted(
        (f"{split}/{file.name}" for split in SPLITS for file in (folder / split).iterdir()),
        key=str.encode,
    )
    listing = hashlib.sha256()
    for path in paths:
        file_digest = hashlib.sha256((folder / path).read_bytes()).hexdigest()
        listing.update(f"{file_digest}  {path}\n".encode())
    return listing.hexdigest()


def check_listing(name: str, folder: Path) -> str:
    """The listing digest of the unpacked `folder`; DatasetError if `name` pins another."""
    found = listing_sha256(folder)
    expected = LISTING_SHA256.get(name)
    if expected is None:
        log.warning("%s: no pinned digest of its files; only --sha256 checks the archive", name)
    elif found != expected:
        raise DatasetError(
            f"the files' listing digest is {found}, but {name}'s SOURCE.md gives {expected}: "
            "not the published set, refused"
        )
    return found


def fetch(
    name: str,
    to: Path,
    base_url: str = BASE_URL,
    sha256: str | None = None,
    limits: Limits | None = None,
    allow_http: bool = False,
) -> Path:
    """Download, check and unpack data set `name` into `to`; returns `to`."""
    limits = limits or Limits()
    if name not in DATASETS:
        raise DatasetError(f"unknown data set {name!r}; known: {', '.join(DATASETS)}")
    if to.exists() and (not to.is_dir() or any(to.iterdir())):
        raise DatasetError(f"{to} exists and is not an empty folder; choose another --to")
    url = f"{base_url.rstrip('/')}/{name}.zip"
    check_address(url, allow_http)
    to.parent.mkdir(parents=True, exist_ok=True)
    # Download and unpack next to `to` (same file system), so the last step is one rename.
    work = Path(tempfile.mkdtemp(prefix=f".{to.name}.", suffix=".partial", dir=to.parent))
    try:
        archive_path = work / f"{name}.zip"
        digest = download(url, archive_path, limits.download_bytes, allow_http)
        if sha256 is not None and digest != sha256.lower():
            raise DatasetError(f"{url}: sha256 {digest}, expected {sha256}")
        staged = work / name
        try:
            with zipfile.ZipFile(archive_path) as archive:
                plan = plan_unpack(archive, name, limits)
                unpack(archive, plan, staged)
            listing = check_listing(name, staged)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as error:
            raise DatasetError(f"{url}: not a valid zip archive ({error})") from error
        except DatasetError as error:
            raise DatasetError(f"{url}: {error}") from error
        counts = {split: len(os.listdir(staged / split)) for split in SPLITS}
        source = {
            "name": name, "url": url, "sha256": digest, "listing_sha256": listing,
            "bytes": archive_path.stat().st_size, "files": counts,
            "fetched": datetime.now(UTC).isoformat(timespec="seconds"),
        }  # fmt: skip
        (staged / "SOURCE.json").write_text(json.dumps(source, indent=2) + "\n")
        if to.exists():
            to.rmdir()  # empty, checked above
        staged.rename(to)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log.info("%s ready in %s: %s", name, to, ", ".join(f"{s} {n}" for s, n in counts.items()))
    return to


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training.tools.datasets", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    get = commands.add_parser("fetch", help="download and unpack a CycleGAN data set")
    get.add_argument("name", help=f"one of: {', '.join(DATASETS)}")
    get.add_argument("--to", type=Path, required=True, help="folder to create (DIR/trainA, ...)")
    get.add_argument(
        "--base-url", default=BASE_URL, help="where NAME.zip lives (default: %(default)s)"
    )
    get.add_argument("--sha256", help="expected sha256 of the archive (none are published)")
    get.add_argument(
        "--allow-http", action="store_true",
        help="accept a plain http --base-url (a local mirror); pinned digests still check files",
    )  # fmt: skip
    get.add_argument(
        "--max-bytes", type=int, default=Limits.download_bytes,
        help="largest download accepted; the unpacked total may be twice that",
    )  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    limits = Limits(download_bytes=args.max_bytes, unpacked_bytes=2 * args.max_bytes)
    try:
        fetch(args.name, args.to, args.base_url, args.sha256, limits, args.allow_http)
    except DatasetError as error:
        log.error("%s", error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
