import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from serving.settings import (
    ServiceSettings,
    SettingsError,
    cgroup_cpu_limit,
    load_settings,
    unknown_variables,
)


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


def test_bad_settings_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CYCLEGAN_BACKEND", "tpu")
    with pytest.raises(ValidationError, match="backend"):
        ServiceSettings()
    monkeypatch.setenv("CYCLEGAN_BACKEND", "auto")
    monkeypatch.setenv("CYCLEGAN_MAX_BATCH_SIZE", "0")
    with pytest.raises(ValidationError, match="max_batch_size"):
        ServiceSettings()


def test_misspelt_settings_are_refused_with_a_suggestion(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bug guarded: CYCLEGAN_MAX_CONCURENCY=1 was silently ignored."""
    monkeypatch.setenv("CYCLEGAN_MAX_CONCURENCY", "1")
    with pytest.raises(
        SettingsError, match=r"CYCLEGAN_MAX_CONCURENCY \(did you mean CYCLEGAN_MAX_CONCURRENCY\?\)"
    ):
        load_settings()
    unknown = unknown_variables({"CYCLEGAN_PORT": "1", "OTHER": "x", "cyclegan_nonsense": "1"})
    assert [name.split()[0] for name in unknown] == ["cyclegan_nonsense"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"max_latency_ms": 60_000, "request_timeout_s": 60}, "max_latency_ms"),
        ({"client_timeout_s": 60, "request_timeout_s": 60}, "client_timeout_s"),
        ({"max_pixels": 100_000_000, "image_memory_mb": 768}, "image_memory_mb"),
        ({"max_resolution": 510}, "multiple of 4"),
        ({"backend": "tensorrt", "device": "cpu"}, "tensorrt"),
        ({"port": 3000, "metrics_port": 3000}, "metrics_port"),
        ({"workers": 2}, "set generator=worker too"),  # in-process: one generator per front
        ({"generator": "elsewhere"}, "generator"),
    ],
)
def test_settings_are_checked_together(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ServiceSettings(**values)


def test_the_server_does_not_start_with_a_misspelt_setting() -> None:
    import os
    import subprocess
    import sys

    from tests.serverlib import ROOT

    result = subprocess.run(
        [sys.executable, "-m", "serving"],
        env={**os.environ, "CYCLEGAN_MAX_CONCURENCY": "1"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "did you mean CYCLEGAN_MAX_CONCURRENCY" in result.stderr


@pytest.mark.parametrize(("value", "expected"), [("false", "0"), ("true", "default")])
def test_thread_spinning_reaches_every_onnx_runtime_session(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch, value: str, expected: str
) -> None:
    from serving.registry import ModelRegistry

    monkeypatch.setenv("CYCLEGAN_THREAD_SPINNING", value)
    registry = ModelRegistry.load(ServiceSettings(model_dir=model_dir), warm_up=False)
    assert registry.ready, registry.problems
    found = set()
    for info in registry.directions.values():
        options = info.backend.session.get_session_options()  # type: ignore[attr-defined]
        try:
            found.add(options.get_session_config_entry("session.intra_op.allow_spinning"))
        except RuntimeError:  # not set: ONNX Runtime's default, spinning
            found.add("default")
    assert found == {expected}


def test_a_pool_can_serve_some_packages_only(tmp_path: Path) -> None:
    """CYCLEGAN_PACKAGES: a pool per pair, from one image that holds every package."""
    from serving.registry import ModelRegistry
    from tests.builders import tiny_pairs

    tiny_pairs(tmp_path, students=False)
    everything = ModelRegistry.load(ServiceSettings(model_dir=tmp_path), warm_up=False)
    assert len(everything.directions) == 4 and everything.ready
    seasons = ServiceSettings(model_dir=tmp_path, packages="summer2winter")
    registry = ModelRegistry.load(seasons, warm_up=False)
    assert set(registry.directions) == {"summer2winter", "winter2summer"} and registry.ready
    typo = ServiceSettings(model_dir=tmp_path, packages="summer2winter,sumer2winter")
    registry = ModelRegistry.load(typo, warm_up=False)
    assert not registry.ready
    assert registry.problems == ["model package sumer2winter is not installed"]
    with pytest.raises(ValidationError, match="packages"):
        ServiceSettings(packages="../elsewhere")


@pytest.mark.parametrize(
    ("files", "cpus"),
    [
        ({"cpu.max": "200000 100000\n"}, 2),  # cgroup v2: 2 CPUs
        ({"cpu.max": "150000 100000\n"}, 2),  # 1.5 CPUs: rounded up
        ({"cpu.max": "max 100000\n"}, None),  # no quota
        ({"cpu/cpu.cfs_quota_us": "100000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 1),  # v1
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({}, None),  # no cgroup files at all
        ({"cpu.max": "junk\n"}, None),
    ],
)
def test_threads_follow_the_containers_cpu_quota(
    tmp_path: Path, files: dict[str, str], cpus: int | None
) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert cgroup_cpu_limit(tmp_path) == (None if cpus is None else min(cpus, os.cpu_count() or 1))


def test_a_thread_setting_wins_over_the_quota() -> None:
    assert ServiceSettings(threads=3).inference_threads == 3
