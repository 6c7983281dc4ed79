import logging
import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image

from training.data import DataError, ResumableSampler, UnpairedDataset, augment, scan_folder


def test_scan_counts_and_skips_unreadable_files(tiny_data: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    folder = tiny_data / "trainA"
    good = sorted(folder.iterdir())[0].read_bytes()
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (folder / "notes.txt").write_text("not an image")
    with caplog.at_level(logging.WARNING):
        scanned = scan_folder(folder)
    assert len(scanned.files) == 6
    assert {p.name for p in scanned.skipped} == {"truncated.jpg", "notes.txt"}
    assert "truncated.jpg" in caplog.text


def test_greyscale_and_palette_images_load_as_rgb(tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    Image.new("L", (40, 30), 100).save(folder / "grey.jpg")
    palette = Image.new("P", (30, 40), 1)
    palette.putpalette([0, 0, 0, 200, 100, 50] + [0] * 762)
    palette.save(folder / "palette.png", transparency=0)
    Image.new("RGBA", (33, 33), (1, 2, 3, 0)).save(folder / "alpha.png")
    scanned = scan_folder(folder)
    assert len(scanned.files) == 3 and not scanned.skipped
    dataset = UnpairedDataset(scanned, scanned, load_size=36, image_size=32, flip=True, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the palette file must not warn
        items = [dataset[(0, i)] for i in range(3)]
    for item in items:
        assert item["a"].shape == item["b"].shape == (3, 32, 32)


def test_empty_and_missing_folders_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty"):
        scan_folder(tmp_path / "empty")
    with pytest.raises(DataError, match="missing"):
        scan_folder(tmp_path / "nope")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.jpg").write_bytes(b"garbage")
    with pytest.raises(DataError, match="could not be decoded"):
        scan_folder(tmp_path / "junk")


def test_augment_crops_non_square_and_is_deterministic() -> None:
    image = Image.new("RGB", (90, 60), (10, 200, 30))
    first = augment(image, 40, 32, True, torch.Generator().manual_seed(3))
    again = augment(image, 40, 32, True, torch.Generator().manual_seed(3))
    assert first.shape == (3, 32, 32) and torch.equal(first, again)


def test_dataset_items_depend_only_on_epoch_and_index(tiny_data: Path) -> None:
    a, b = scan_folder(tiny_data / "trainA"), scan_folder(tiny_data / "trainB")
    one = UnpairedDataset(a, b, 36, 32, True, seed=5)
    two = UnpairedDataset(a, b, 36, 32, True, seed=5)
    assert len(one) == 6  # max(|A|, |B|)
    assert torch.equal(one[(2, 4)]["b"], two[(2, 4)]["b"])
    assert not torch.equal(one[(0, 0)]["a"], one[(1, 0)]["a"]) or not torch.equal(
        one[(0, 1)]["a"], one[(1, 1)]["a"]
    )  # a new epoch reshuffles


def take(sampler: ResumableSampler, count: int) -> list[tuple[int, int]]:
    iterator = iter(sampler)
    return [next(iterator) for _ in range(count)]


def test_sampler_shards_ranks_and_resumes() -> None:
    # 10 items, batch 2, 2 ranks: 2 steps per epoch, each step covers 4 distinct items.
    rank0 = take(ResumableSampler(10, 2, rank=0, world=2, start_step=0), 8)
    rank1 = take(ResumableSampler(10, 2, rank=1, world=2, start_step=0), 8)
    assert ResumableSampler(10, 2, 0, 2, 0).steps_per_epoch == 2
    assert rank0[:4] == [(0, 0), (0, 2), (0, 4), (0, 6)]
    assert rank1[:4] == [(0, 1), (0, 3), (0, 5), (0, 7)]
    assert rank0[4:6] == [(1, 0), (1, 2)]  # next epoch
    resumed = take(ResumableSampler(10, 2, rank=0, world=2, start_step=1), 6)
    assert resumed == rank0[2:8]
