"""The shipped models carry their discriminators beside them (models/<pair>.adversary.safetensors,
never served), so a run grown from a committed model with `--init-from` continues its game."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from cyclegan.generator import count_macs
from cyclegan.package import load_package
from tests.builders import ROOT
from training.adversary import adversary_path
from training.config import TrainConfig
from training.placement import Placement
from training.train import start_state


@pytest.mark.parametrize("pair", ["horse2zebra", "summer2winter"])
def test_a_shipped_model_grows_on_with_its_discriminators(tmp_path: Path, pair: str) -> None:
    model = ROOT / "models" / pair
    package = load_package(model)  # schema, files, hashes
    training = package.manifest.training
    assert training["config"]["d_arch"] == "projected"
    assert training["weights"]["kind"] == "selected on the validation split"
    for direction in package.manifest.directions.values():
        assert count_macs(direction.generator, 256, 256) <= 6.5e9  # the shipped budget
    assert adversary_path(model).is_file()
    # the recipe's config, grown from the candidate: both projected heads come back
    values = {key: value for key, value in training["config"].items() if key != "init_from"}
    config = TrainConfig.model_validate(
        values | {"data": tmp_path, "init_from": model, "val_every": 0, "val_fraction": 0}
    )
    state, init_record = start_state(config, Placement(torch.device("cpu"), None, 0, 1), None)
    assert init_record["adversary"]["restored"] == ["projected_a", "projected_b"]
    assert init_record["version"] == package.manifest.version
    carried = load_file(str(adversary_path(model)))
    for key, value in state.discriminators.projected_a.state_dict().items():
        assert torch.equal(value, carried[f"projected_a.{key}"].float()), key
