"""`compile verify` runs at the shapes the service runs, and the shared timing loop."""

from pathlib import Path

import torch

from compile.__main__ import main
from compile.timing import rate, rates
from compile.verify import verify_package
from cyclegan.generator import build_generator, init_weights
from cyclegan.imaging import served_resolution
from cyclegan.package import load_package, write_package
from tests.builders import SMALL


def test_served_resolution_rounds_down_to_a_multiple_of_4() -> None:
    assert [served_resolution(n) for n in (256, 286, 287, 66, 4)] == [256, 284, 284, 64, 4]


def test_verify_runs_at_the_served_resolution_not_the_native_one(tmp_path: Path) -> None:
    torch.manual_seed(0)
    nets = {}
    for key in ("ab", "ba"):
        net = build_generator(SMALL)
        init_weights(net)
        nets[key] = (net, SMALL)
    package = write_package(
        tmp_path / "pkg", name="h2z", version="1", domains=("horse", "zebra"), generators=nets,
        native_resolution=42,  # not a multiple of 4: the generator would answer 44x44
    )  # fmt: skip
    rows = verify_package(package, batches=(1,), repeats=1)
    assert {row.resolution for row in rows} == {40}
    assert all(row.passed for row in rows)


def test_verify_refuses_a_resolution_the_generator_cannot_take(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    from tests.builders import make_package

    package = make_package(tmp_path / "pkg", SMALL)
    assert main(["verify", "--package", str(package), "--resolution", "30"]) == 2
    assert "must be a multiple of 4" in caplog.text
    assert load_package(package).direction("horse2zebra").onnx is None  # nothing was written


def test_rates_counts_every_call_and_interleaves() -> None:
    order: list[str] = []
    timed = rates(
        {"a": lambda: order.append("a"), "b": lambda: order.append("b")},
        items=4, seconds=0.0, rounds=3, min_calls=2, warmup=1,
    )  # fmt: skip
    # one warm-up each, then 3 rounds of 2 calls taking turns
    assert order == ["a", "b"] + ["a", "a", "b", "b"] * 3
    assert set(timed) == {"a", "b"} and all(v > 0 for v in timed.values())
    synced: list[int] = []
    assert rate(lambda: None, 1, 0.0, min_calls=3, synchronize=lambda: synced.append(1)) > 0
    assert len(synced) == 1 + 3  # after the warm-up, then after every timed call
