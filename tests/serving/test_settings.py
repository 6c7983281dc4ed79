from pathlib import Path

import pytest
from pydantic import ValidationError

from serving.settings import ServiceSettings


def test_settings_come_from_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CYCLEGAN_MODEL_DIR", "/srv/models")
    monkeypatch.setenv("CYCLEGAN_BACKEND", "onnxruntime")
    monkeypatch.setenv("CYCLEGAN_MAX_BATCH_SIZE", "16")
    monkeypatch.setenv("CYCLEGAN_MAX_LATENCY_MS", "50")
    monkeypatch.setenv("CYCLEGAN_MAX_PIXELS", "1000")
    settings = ServiceSettings()
    assert settings.model_dir == Path("/srv/models")
    limits = (settings.max_batch_size, settings.max_latency_ms, settings.max_pixels)
    assert settings.backend == "onnxruntime" and limits == (16, 50, 1000)
    assert ServiceSettings.model_config["env_prefix"] == "CYCLEGAN_"


def test_bad_settings_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CYCLEGAN_BACKEND", "tpu")
    with pytest.raises(ValidationError, match="backend"):
        ServiceSettings()
    monkeypatch.setenv("CYCLEGAN_BACKEND", "auto")
    monkeypatch.setenv("CYCLEGAN_MAX_BATCH_SIZE", "0")
    with pytest.raises(ValidationError, match="max_batch_size"):
        ServiceSettings()
