"""The committed candidate for the next default (training/candidates/horse2zebra): a package the
next session grows with `--init-from`, its discriminators beside it. It is not served."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from cyclegan.generator import count_macs
from cyclegan.package import load_package
from tests.conftest import ROOT
from training.adversary import adversary_path
from training.config import TrainConfig
from training.runtime import Runtime
from training.train import start_state

CANDIDATE = ROOT / "training" / "candidates" / "horse2zebra"


@pytest.mark.skipif(not CANDIDATE.is_dir(), reason="no candidate committed")
def test_the_candidate_grows_on_with_its_discriminators(tmp_path: Path) -> None:
    package = load_package(CANDIDATE)  # schema, files, hashes
    training = package.manifest.training
    assert training["config"]["d_arch"] == "projected"
    assert training["weights"]["kind"] == "selected on the validation split"
    for direction in package.manifest.directions.values():
        assert count_macs(direction.generator, 256, 256) <= 6.5e9  # the default's budget
    assert adversary_path(CANDIDATE).is_file()
    # the recipe's config, grown from the candidate: both projected heads come back
    values = {key: value for key, value in training["config"].items() if key != "init_from"}
    config = TrainConfig.model_validate(
        values | {"data": tmp_path, "init_from": CANDIDATE, "val_every": 0, "val_fraction": 0}
    )
    state, grown_from = start_state(config, Runtime(torch.device("cpu"), None, 0, 1), None)
    assert grown_from["adversary"]["restored"] == ["projected_a", "projected_b"]
    assert grown_from["version"] == package.manifest.version
    carried = load_file(str(adversary_path(CANDIDATE)))
    for key, value in state.discriminators.projected_a.state_dict().items():
        assert torch.equal(value, carried[f"projected_a.{key}"].float()), key
