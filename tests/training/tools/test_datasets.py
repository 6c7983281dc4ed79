"""`python -m training.tools.datasets fetch` against a real loopback HTTP server serving test zips.

Good archives unpack into DIR/trainA...testB; hostile or broken ones are refused with a message
that says why, and leave nothing behind (no DIR, no partial folder, nothing outside DIR).
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import logging
import re
import stat
import subprocess
import sys
import threading
import warnings
import zipfile
from collections.abc import Callable, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.builders import DATA, FIXTURES, ROOT, SEASONS, real_images
from training.data import scan_folder
from training.tools import datasets
from training.tools.datasets import (
    LISTING_SHA256,
    SPLITS,
    DatasetError,
    Limits,
    download,
    fetch,
    listing_sha256,
    main,
)

NAME = "apple2orange"  # a known set without a pinned digest: any files of the layout pass


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # keep the test output clean
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """(base URL, folder it serves): a threaded HTTP server on 127.0.0.1 at a free port."""
    folder = tmp_path / "www"
    folder.mkdir()
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/datasets", folder
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def good_members() -> dict[str, bytes]:
    """NAME/<split>/<file>: two real fixture JPEGs per split, like the published archives."""
    return {
        f"{NAME}/{split}/{path.name}": path.read_bytes()
        for split in SPLITS
        for path in real_images(split, 2)
    }


def fetch_over_http(name: str, to: Path, base_url: str, **options: Any) -> Path:
    """`fetch` from the loopback server, which speaks plain http."""
    return fetch(name, to, base_url, allow_http=True, **options)


def build_zip(
    members: dict[str, bytes], edit: Callable[[zipfile.ZipFile], None] | None = None
) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        if edit is not None:
            edit(archive)
    return buffer.getvalue()


def publish(folder: Path, data: bytes, name: str = NAME) -> str:
    (folder / "datasets").mkdir(exist_ok=True)
    (folder / "datasets" / f"{name}.zip").write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def assert_left_nothing(tmp_path: Path, dest: Path) -> None:
    assert not dest.exists()
    assert not list(tmp_path.glob("**/*.partial")), "a partial folder was left behind"
    assert not list(tmp_path.glob("**/evil*")), "a hostile member was written"


def test_fetch_unpacks_a_published_layout(served: tuple[str, Path], tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    url, folder = served
    members = good_members()
    extra = {f"{NAME}/README.txt": b"notes", f"__MACOSX/{NAME}/trainA/._x.jpg": b"x"}
    sha256 = publish(folder, build_zip({**members, **extra}))
    dest = tmp_path / "data" / NAME
    with caplog.at_level(logging.INFO, logger="training.tools.datasets"):
        argv = ["fetch", NAME, "--to", str(dest), "--base-url", url, "--allow-http"]
        assert main([*argv, "--sha256", sha256]) == 0
    for name, data in members.items():
        assert (dest / name.removeprefix(f"{NAME}/")).read_bytes() == data
    assert sorted(p.name for p in dest.iterdir()) == ["SOURCE.json", *sorted(SPLITS)]
    assert len(scan_folder(dest / "trainA").files) == 2  # the trainer reads it as it is
    source = json.loads((dest / "SOURCE.json").read_text())
    assert source["sha256"] == sha256 and source["url"] == f"{url}/{NAME}.zip"
    assert source["files"] == {split: 2 for split in SPLITS}
    assert "skipping 2 archive members" in caplog.text and sha256 in caplog.text
    assert not list(dest.parent.glob("*.partial"))
    # A second fetch never mixes two downloads in one folder.
    with pytest.raises(DatasetError, match="exists and is not an empty folder"):
        fetch_over_http(NAME, dest, url)


def test_archive_with_folders_at_its_top_and_an_empty_target(
    served: tuple[str, Path], tmp_path: Path
) -> None:
    url, folder = served
    publish(folder, build_zip({k.removeprefix(f"{NAME}/"): v for k, v in good_members().items()}))
    dest = tmp_path / "empty"
    dest.mkdir()
    assert fetch_over_http(NAME, dest, url) == dest
    assert all(len(list((dest / split).iterdir())) == 2 for split in SPLITS)


def add_symlink(archive: zipfile.ZipFile) -> None:
    info = zipfile.ZipInfo(f"{NAME}/trainA/evil-link.jpg")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    archive.writestr(info, "/etc/passwd")


def add_member(name: str) -> Callable[[zipfile.ZipFile], None]:
    def edit(archive: zipfile.ZipFile) -> None:
        info = zipfile.ZipInfo(name)
        info.filename = name  # ZipInfo() may normalise; the attack is the raw name
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zipfile warns about the duplicate name
            archive.writestr(info, b"pwned")

    return edit


HOSTILE = {
    "traversal": (add_member(f"{NAME}/trainA/../../../evil.txt"), "'..' part"),
    "absolute path": (add_member("/tmp/evil-absolute.txt"), "an absolute path"),
    "backslash": (add_member(f"{NAME}\\..\\..\\evil.txt"), "a backslash"),
    "drive letter": (add_member("C:evil.txt"), "a drive letter"),
    "symlink": (add_symlink, "a link or special file"),
    "duplicate": (add_member(f"{NAME}/trainA/n02381460_1001.jpg"), "appears twice"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_archives_are_refused(served: tuple[str, Path], tmp_path: Path, case: str) -> None:
    url, folder = served
    edit, message = HOSTILE[case]
    publish(folder, build_zip(good_members(), edit))
    dest = tmp_path / "out" / NAME
    with pytest.raises(DatasetError, match=message):
        fetch_over_http(NAME, dest, url)
    assert_left_nothing(tmp_path, dest)


def corrupt_crc() -> bytes:
    """A stored (uncompressed) archive with one byte of a member's data flipped."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, member in good_members().items():
            archive.writestr(name, member)
    raw = bytearray(buffer.getvalue())
    raw[200] ^= 0xFF  # inside the first member's JPEG bytes, past its 30-byte local header
    return bytes(raw)


BROKEN = {
    "not a zip": (lambda: b"<html>not found</html>" * 50, "not a valid zip archive"),
    "truncated": (lambda: build_zip(good_members())[:5000], "not a valid zip archive"),
    "bad CRC": (corrupt_crc, "Bad CRC-32"),
    "missing folders": (
        lambda: build_zip({k: v for k, v in good_members().items() if "/test" not in k}),
        "no files in testA, testB",
    ),
    "empty": (lambda: build_zip({}), "no files in trainA, trainB, testA, testB"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_archives_are_refused(served: tuple[str, Path], tmp_path: Path, case: str) -> None:
    url, folder = served
    make, message = BROKEN[case]
    publish(folder, make())
    dest = tmp_path / "out" / NAME
    with pytest.raises(DatasetError, match=message):
        fetch_over_http(NAME, dest, url)
    assert_left_nothing(tmp_path, dest)


def test_limits_stop_big_downloads_and_zip_bombs(served: tuple[str, Path], tmp_path: Path) -> None:
    url, folder = served
    bomb = build_zip({**good_members(), f"{NAME}/trainA/zeros.jpg": bytes(20 << 20)})
    publish(folder, bomb)
    assert len(bomb) < 1 << 20  # 20 MiB of zeros deflate to almost nothing
    dest = tmp_path / NAME
    with pytest.raises(DatasetError, match=r"unpacks to \d+ bytes, over the limit"):
        fetch_over_http(NAME, dest, url, limits=Limits(unpacked_bytes=10 << 20))
    with pytest.raises(DatasetError, match="over the limit of 1000"):
        fetch_over_http(NAME, dest, url, limits=Limits(download_bytes=1000))
    with pytest.raises(DatasetError, match="members, over the limit of 5"):
        fetch_over_http(NAME, dest, url, limits=Limits(members=5))
    assert_left_nothing(tmp_path, dest)


def test_wrong_checksum_missing_file_and_unknown_name(
    served: tuple[str, Path], tmp_path: Path, caplog
) -> None:  # type: ignore[no-untyped-def]
    url, folder = served
    publish(folder, build_zip(good_members()))
    dest = tmp_path / NAME
    with pytest.raises(DatasetError, match=r"sha256 [0-9a-f]{64}, expected 00"):
        fetch_over_http(NAME, dest, url, sha256="00" * 32)
    with pytest.raises(DatasetError, match="HTTP 404"):
        fetch_over_http("monet2photo", tmp_path / "monet2photo", url)
    with pytest.raises(DatasetError, match="unknown data set 'cats2dogs'; known: apple2orange"):
        fetch_over_http("cats2dogs", tmp_path / "cats2dogs", url)
    with caplog.at_level(logging.ERROR):
        assert main(["fetch", NAME, "--to", str(dest), "--base-url", "ftp://x"]) == 1
    assert "only http(s) addresses" in caplog.text
    assert_left_nothing(tmp_path, dest)


def test_command_line(served: tuple[str, Path], tmp_path: Path) -> None:
    url, folder = served
    publish(folder, build_zip(good_members()))
    dest = tmp_path / NAME
    command = [sys.executable, "-m", "training.tools.datasets", "fetch", NAME, "--to", str(dest)]
    result = subprocess.run(
        [*command, "--base-url", url, "--allow-http"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert f"{NAME} ready in {dest}: trainA 2, trainB 2, testA 2, testB 2" in result.stderr
    assert result.stdout == ""  # logging, not print


def test_make_train_says_how_to_get_the_data(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    result = subprocess.run(
        ["make", "--no-print-directory", "train", f"DATA={missing}"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert f"python -m training.tools.datasets fetch horse2zebra --to {missing}" in result.stderr


def listing_by_coreutils(folder: Path) -> str:
    """The listing digest as SOURCE.md computes it, with the shell tools it names."""
    command = (
        "find trainA trainB testA testB -type f | LC_ALL=C sort | xargs -d '\\n' sha256sum "
        "| sha256sum"
    )
    result = subprocess.run(
        ["bash", "-c", command], cwd=folder, capture_output=True, text=True, check=True
    )
    return result.stdout.split()[0]


def fixture_members(name: str, fixtures: Path) -> dict[str, bytes]:
    """name/<split>/<file> for every image of a fixture set (4 to 8 per split)."""
    return {
        f"{name}/{split}/{path.name}": path.read_bytes()
        for split in SPLITS
        for path in sorted((fixtures / split).iterdir())
    }


def test_a_pinned_set_with_other_files_is_refused_and_nothing_kept(
    served: tuple[str, Path], tmp_path: Path
) -> None:
    url, folder = served
    publish(folder, build_zip(fixture_members("horse2zebra", FIXTURES)), "horse2zebra")
    dest = tmp_path / "out" / "horse2zebra"
    pinned = LISTING_SHA256["horse2zebra"]
    with pytest.raises(DatasetError, match=f"horse2zebra's SOURCE.md gives {pinned}"):
        fetch_over_http("horse2zebra", dest, url)
    assert_left_nothing(tmp_path, dest)
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize(
    ("name", "fixtures"),
    [("horse2zebra", FIXTURES), ("summer2winter_yosemite", SEASONS)],  # names with spaces
)
def test_a_pinned_set_whose_files_match_is_accepted(
    served: tuple[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    fixtures: Path,
) -> None:
    url, folder = served
    members = fixture_members(name, fixtures)
    # Pin what coreutils says of these files, as SOURCE.md's digest says it of the real set.
    monkeypatch.setitem(LISTING_SHA256, name, listing_by_coreutils(fixtures))
    publish(folder, build_zip(members), name)
    dest = tmp_path / "data" / name
    assert fetch_over_http(name, dest, url) == dest
    assert json.loads((dest / "SOURCE.json").read_text())["listing_sha256"] == LISTING_SHA256[name]
    for member, data in members.items():
        assert (dest / member.removeprefix(f"{name}/")).read_bytes() == data


@pytest.mark.parametrize("name", ["horse2zebra", "summer2winter_yosemite"])
def test_the_pins_are_the_digests_source_md_gives(name: str) -> None:
    folder = DATA.parent / name
    if not (folder / "SOURCE.md").is_file():
        pytest.skip(f"{folder} is not on this machine")
    given = re.search(r"\ngives\s+([0-9a-f]{64})", (folder / "SOURCE.md").read_text())
    assert given is not None and LISTING_SHA256[name] == given.group(1)
    assert listing_sha256(folder) == given.group(1)  # the whole set, as it is here


def test_plain_http_is_refused_unless_asked_for(
    served: tuple[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url, folder = served
    publish(folder, build_zip(good_members()))
    dest = tmp_path / NAME
    with pytest.raises(DatasetError, match="plain http can be altered on the way"):
        fetch(NAME, dest, url)
    assert_left_nothing(tmp_path, dest)
    argv = ["fetch", NAME, "--to", str(dest), "--base-url", url]
    with caplog.at_level(logging.ERROR):
        assert main(argv) == 1
    assert "use https, or pass --allow-http" in caplog.text
    assert_left_nothing(tmp_path, dest)
    assert main([*argv, "--allow-http"]) == 0
    assert all(len(list((dest / split).iterdir())) == 2 for split in SPLITS)


class RedirectedResponse(io.BytesIO):
    """What urlopen gives after an https address redirected to a plain http one."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.headers: dict[str, str] = {}

    def geturl(self) -> str:
        return "http://mirror.example/horse2zebra.zip"


def test_a_redirect_to_plain_http_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        datasets.urllib.request, "urlopen", lambda url, timeout: RedirectedResponse(b"PK")
    )
    with pytest.raises(
        DatasetError, match=re.escape("http://mirror.example/horse2zebra.zip: plain http")
    ):
        download("https://example.org/horse2zebra.zip", tmp_path / "x.zip", 1000)
    assert not (tmp_path / "x.zip").exists()
