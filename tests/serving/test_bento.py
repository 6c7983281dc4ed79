"""`bentoml build` with the project's bentofile.yaml packs a bento that serves its models."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from loadtest.server import Server, free_port, stop_server, wait_until
from tests.builders import ROOT, real_images


@pytest.mark.slow
def test_built_bento_serves_its_models(tmp_path: Path, model_dir: Path) -> None:
    # A copy of the project with the tiny test package as its models/, so the test does not
    # depend on (or copy) the shipped model.
    project = tmp_path / "project"
    for name in ("cyclegan", "serving", "requirements", "bentofile.yaml", "README.md"):
        source = ROOT / name
        copy = shutil.copytree if source.is_dir() else shutil.copy
        copy(source, project / name)
    shutil.copytree(model_dir, project / "models")
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "bentoml"), "OMP_NUM_THREADS": "1"}
    bentoml = [sys.executable, "-m", "bentoml"]
    built = subprocess.run(
        [*bentoml, "build"], cwd=project, env=env, capture_output=True, text=True, timeout=300
    )
    assert built.returncode == 0, built.stdout + built.stderr
    tag = re.search(r"cyclegan-translation:\w+", built.stdout + built.stderr)
    assert tag, built.stdout
    bento_src = (
        tmp_path
        / "bentoml"
        / "bentos"
        / "cyclegan-translation"
        / tag.group(0).split(":")[1]
        / "src"
    )
    assert (bento_src / "models" / "horse2zebra" / "model.json").is_file()
    assert (bento_src / "serving" / "static" / "index.html").is_file()
    assert (bento_src / "serving" / "static" / "app.js").is_file()

    port, metrics_port = free_port(), free_port()
    log = tmp_path / "bento.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [*bentoml, "serve", tag.group(0), "--host", "127.0.0.1", "--port", str(port)],
            env={**env, "CYCLEGAN_PORT": str(port), "CYCLEGAN_METRICS_PORT": str(metrics_port)},
            cwd=tmp_path, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    metrics = f"http://127.0.0.1:{metrics_port}/metrics"
    server = Server(f"http://127.0.0.1:{port}", process, log, metrics)
    try:
        wait_until(server, "/readyz", 200)
        image = real_images("testA", 1)[0].read_bytes()
        response = httpx.post(
            f"{server.url}/translate/horse2zebra",
            content=image,
            headers={"content-type": "image/jpeg"},
            timeout=60,
        )
        assert response.status_code == 200 and response.content.startswith(b"\x89PNG")
        assert "app.js" in httpx.get(f"{server.url}/").text  # the web page came along
        assert "/translate/" in httpx.get(f"{server.url}/static/app.js").text
        assert "cyclegan_requests_total" in httpx.get(metrics).text
    finally:
        stop_server(server)
