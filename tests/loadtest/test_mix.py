"""`python -m loadtest --mix`: which directions a load test sends, and in what proportion."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import pytest

from loadtest.__main__ import main
from loadtest.mix import MixError, choose_weights, parse_mix
from tests.builders import SEASONS
from tests.serverlib import Server


def test_a_mix_is_parsed_and_checked_against_the_offer() -> None:
    assert parse_mix("") == {}
    assert parse_mix("horse2zebra=3,summer2winter=1 winter2summer=0") == {
        "horse2zebra": 3.0, "summer2winter": 1.0, "winter2summer": 0.0,
    }  # fmt: skip
    offered = ["zebra2horse", "horse2zebra", "summer2winter", "winter2summer"]
    assert choose_weights(offered, {}) == (sorted(offered), [1.0] * 4)
    mix = parse_mix("horse2zebra=3,summer2winter=1,winter2summer=0")
    assert choose_weights(offered, mix) == (["horse2zebra", "summer2winter"], [3.0, 1.0])
    with pytest.raises(MixError, match="does not offer"):
        choose_weights(offered, {"horse2zebar": 1.0})


@pytest.mark.parametrize("text", ["horse2zebra", "=2", "horse2zebra=-1", "a=x", "a=inf", "a=0"])
def test_bad_mixes_are_refused(text: str) -> None:
    with pytest.raises(MixError):
        parse_mix(text)


def test_the_mix_sends_each_named_direction_and_no_other(
    two_pairs_server: Server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    named = ["horse2zebra", "winter2summer", "summer2winter-fast"]
    images = f"{SEASONS / 'testA'}:{SEASONS / 'testB'}"  # file names with spaces
    common = ["--host", two_pairs_server.url, "--users", "3", "--spawn-rate", "3"]
    common += ["--duration", "8", "--images", images, "--max-p95-ms", "60000"]
    out = tmp_path / "mixed"
    assert main([*common, "--out", str(out), "--mix", *(f"{n}=1" for n in named)]) == 0
    with (out / "locust_stats.csv").open() as file:
        rows = {r["Name"]: int(r["Request Count"]) for r in csv.DictReader(file)}
    sent = {
        name.removeprefix("/translate/"): n for name, n in rows.items() if "/translate/" in name
    }
    assert set(sent) == set(named) and all(n > 0 for n in sent.values()), rows
    with caplog.at_level(logging.ERROR, logger="loadtest"):
        assert main([*common, "--out", str(tmp_path / "typo"), "--mix", "horse2zebar=1"]) == 2
    assert "horse2zebar, which the server does not offer" in caplog.text
    assert not (tmp_path / "typo" / "locust_stats.csv").exists()
