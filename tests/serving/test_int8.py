"""Serving a package's INT8 graph (written by `python -m compile quantize`)."""

from __future__ import annotations

from pathlib import Path

import httpx

from compile.__main__ import main as compile_main
from tests.builders import FIXTURES, SMALL, make_package, real_images
from tests.serverlib import start_server, stop_server, wait_until


def test_int8_precision_serves_the_int8_graph(tmp_path: Path) -> None:
    models = tmp_path / "models"
    package = make_package(models / "horse2zebra", SMALL)
    assert compile_main(["onnx", "--package", str(package)]) == 0
    quantize = ["quantize", "--package", str(package), "--calibration", str(FIXTURES)]
    assert compile_main([*quantize, "--samples", "4"]) == 0
    server = start_server(models, tmp_path / "server", {"CYCLEGAN_PRECISION": "int8"})
    try:
        wait_until(server, "/readyz", 200)
        directions = httpx.get(f"{server.url}/directions", timeout=30).json()["directions"]
        assert {d["precision"] for d in directions.values()} == {"int8"}
        answer = httpx.post(
            f"{server.url}/translate/horse2zebra",
            content=real_images("testA", 1)[0].read_bytes(),
            headers={"Content-Type": "image/jpeg"},
            timeout=60,
        )
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
    finally:
        stop_server(server)
