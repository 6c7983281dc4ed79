"""The real server over HTTP: translations, input kinds, formats, errors, batching, metrics."""

from __future__ import annotations

import concurrent.futures
import io
import re
from pathlib import Path

import bentoml
import httpx
import numpy as np
import pytest
from PIL import Image

from loadtest.probe import Answer, metric
from tests.builders import ROOT, real_images
from tests.serverlib import Server, load_until, start_server, stop_server, wait_until

JPEG = {"content-type": "image/jpeg"}
PNG = {"content-type": "image/png"}


def encoded(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def post(
    server: Server, direction: str, data: bytes, headers: dict[str, str], query: str = ""
) -> httpx.Response:
    return httpx.post(
        f"{server.url}/translate/{direction}{query}", content=data, headers=headers, timeout=60
    )


def decode(response: httpx.Response) -> Image.Image:
    assert response.status_code == 200, response.text
    image = Image.open(io.BytesIO(response.content))
    image.load()
    return image


@pytest.mark.parametrize("direction", ["horse2zebra", "zebra2horse"])
def test_every_direction_translates_a_real_image(server: Server, direction: str) -> None:
    path = real_images("testA" if direction.startswith("horse") else "testB", 1)[0]
    response = post(server, direction, path.read_bytes(), JPEG)
    assert response.headers["content-type"] == "image/png"
    out = decode(response)
    with Image.open(path) as original:
        assert out.size == original.size
        difference = np.abs(
            np.asarray(out.convert("RGB"), float) - np.asarray(original.convert("RGB"), float)
        )
    assert difference.mean() > 1.0  # it changed the picture


def test_size_and_aspect_ratio_are_kept(server: Server) -> None:
    image = Image.new("RGB", (300, 120), (200, 30, 30))
    assert decode(post(server, "horse2zebra", encoded(image), PNG)).size == (300, 120)
    tiny = Image.new("RGB", (5, 3), (0, 90, 0))
    assert decode(post(server, "horse2zebra", encoded(tiny), PNG)).size == (5, 3)


def test_alpha_is_kept(server: Server) -> None:
    image = Image.new("RGBA", (64, 48), (10, 200, 30, 255))
    image.putpixel((0, 0), (0, 0, 0, 0))
    out = decode(post(server, "horse2zebra", encoded(image), PNG))
    assert out.mode == "RGBA" and out.size == (64, 48)
    assert out.getpixel((0, 0))[3] == 0 and out.getpixel((10, 10))[3] == 255


@pytest.mark.parametrize(
    "make",
    [
        lambda: encoded(Image.new("L", (40, 30), 90)),
        lambda: encoded(Image.new("CMYK", (40, 30), (0, 50, 100, 0)), "JPEG"),
        lambda: encoded(Image.fromarray(np.full((30, 40), 30000, np.uint16))),
        lambda: encoded(Image.new("RGB", (40, 30), (5, 6, 7)), "WEBP"),
        lambda: encoded(Image.new("RGB", (40, 30), (5, 6, 7)), "GIF"),
        lambda: encoded(Image.new("RGB", (40, 30), (5, 6, 7)), "BMP"),
    ],
    ids=["greyscale", "cmyk-jpeg", "16-bit", "webp", "gif", "bmp"],
)
def test_input_kinds_are_accepted(server: Server, make) -> None:  # type: ignore[no-untyped-def]
    out = decode(post(server, "horse2zebra", make(), {"content-type": "image/*"}))
    assert out.size == (40, 30)


def test_palette_with_transparency_keeps_it(server: Server) -> None:
    image = Image.new("P", (32, 32), 1)
    image.putpalette([0, 0, 0, 250, 10, 10] + [0] * 762)
    image.putpixel((0, 0), 0)
    out = decode(post(server, "horse2zebra", encoded(image, transparency=0), PNG))
    assert out.mode == "RGBA" and out.getpixel((0, 0))[3] == 0 and out.getpixel((5, 5))[3] == 255


def test_exif_orientation_is_honoured(server: Server) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 60x40, shown rotated a quarter turn: 40x60
    data = encoded(Image.new("RGB", (60, 40), (100, 100, 100)), "JPEG", exif=exif)
    assert decode(post(server, "horse2zebra", data, JPEG)).size == (40, 60)


@pytest.mark.parametrize(
    ("headers", "query", "mime"),
    [
        ({"accept": "image/jpeg"}, "", "image/jpeg"),
        ({"accept": "image/webp,image/png;q=0.9"}, "", "image/webp"),
        ({"accept": "*/*"}, "", "image/png"),
        ({"accept": "image/png"}, "?format=jpg", "image/jpeg"),
        ({}, "?format=webp", "image/webp"),
    ],
)
def test_output_format(server: Server, headers: dict[str, str], query: str, mime: str) -> None:
    data = real_images("testA", 1)[0].read_bytes()
    response = post(server, "horse2zebra", data, {**JPEG, **headers}, query)
    assert response.headers["content-type"] == mime
    assert decode(response).format == mime.split("/")[1].upper()


def test_working_resolution_can_be_asked(server: Server) -> None:
    data = encoded(Image.new("RGB", (100, 80), (1, 2, 3)))
    assert decode(post(server, "horse2zebra", data, PNG, "?resolution=32")).size == (100, 80)
    response = post(server, "horse2zebra", data, PNG, "?resolution=512")
    assert response.status_code == 400 and "between 32 and 256" in response.json()["error"]
    assert post(server, "horse2zebra", data, PNG, "?resolution=abc").status_code == 400


def test_multipart_form(server: Server) -> None:
    path = real_images("testB", 1)[0]
    response = httpx.post(
        f"{server.url}/translate/zebra2horse",
        files={"image": (path.name, path.read_bytes(), "image/jpeg")},
    )
    assert decode(response).size == Image.open(path).size
    missing = httpx.post(
        f"{server.url}/translate/zebra2horse", files={"picture": ("a.jpg", b"x", "image/jpeg")}
    )
    assert missing.status_code == 400 and "'image'" in missing.json()["error"]
    as_text = httpx.post(
        f"{server.url}/translate/zebra2horse", data={"image": "http://example.com/a.jpg"}
    )
    assert as_text.status_code == 400


ERRORS = [
    ("cat2dog", b"any body", "image/jpeg", 404, "horse2zebra, zebra2horse"),
    ("horse2zebra", b"", "image/jpeg", 400, "empty"),
    ("horse2zebra", b"this is not an image", "image/jpeg", 400, "not an image"),
    ("horse2zebra", b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, "image/png", 400, "not an image"),
]


@pytest.mark.parametrize(("direction", "data", "mime", "status", "message"), ERRORS)
def test_bad_requests(
    server: Server, direction: str, data: bytes, mime: str, status: int, message: str
) -> None:
    response = post(server, direction, data, {"content-type": mime})
    assert response.status_code == status
    assert message in response.json()["error"]


def test_truncated_image(server: Server) -> None:
    data = real_images("testA", 1)[0].read_bytes()
    response = post(server, "horse2zebra", data[: len(data) // 2], JPEG)
    assert response.status_code == 400 and "truncated" in response.json()["error"]


def test_unsupported_format_is_406(server: Server) -> None:
    data = real_images("testA", 1)[0].read_bytes()
    assert post(server, "horse2zebra", data, JPEG, "?format=gif").status_code == 406
    response = post(server, "horse2zebra", data, {**JPEG, "accept": "application/pdf"})
    assert response.status_code == 406 and "image/png" in response.json()["error"]


def test_too_many_bytes_is_413(server: Server) -> None:
    big = b"\xff" * 3_100_000
    response = post(server, "horse2zebra", big, JPEG)
    assert response.status_code == 413 and "limit is 3000000" in response.json()["error"]

    def chunks():  # no Content-Length: counted while reading
        for _ in range(40):
            yield b"\x00" * 100_000

    chunked = httpx.post(f"{server.url}/translate/horse2zebra", content=chunks(), headers=JPEG)
    assert chunked.status_code == 413


def test_decompression_bomb_is_413(server: Server) -> None:
    bomb = encoded(Image.new("L", (2100, 2100), 0))  # 4.4 Mpx, a few KB of PNG
    assert len(bomb) < 100_000
    response = post(server, "horse2zebra", bomb, PNG)
    assert response.status_code == 413 and "pixels" in response.json()["error"]


def test_pickle_and_json_bodies_are_refused(server: Server) -> None:
    pickled = post(
        server, "horse2zebra", b"\x80\x05N.", {"content-type": "application/vnd.bentoml+pickle"}
    )
    assert pickled.status_code == 415
    as_json = httpx.post(
        f"{server.url}/translate", json={"image": "/etc/hostname", "direction": "horse2zebra"}
    )
    assert as_json.status_code == 415


def test_concurrent_requests_form_batches(server: Server) -> None:
    """Under load from six clients, a forward pass carries more than one image, and every
    image is counted once."""
    data = real_images("testA", 1)[0].read_bytes()

    def batch_counts() -> tuple[float, float]:
        images = metric(server.metrics_url, "cyclegan_batch_size_sum", direction="horse2zebra")
        return images, metric(
            server.metrics_url, "cyclegan_batch_size_count", direction="horse2zebra"
        )

    images_before, passes_before = batch_counts()

    def batched(_: Answer) -> bool:
        images, passes = batch_counts()
        return passes - passes_before < images - images_before

    answers = load_until(server, "/translate/horse2zebra", data, JPEG, batched, clients=6)
    assert {a.status_code for a in answers} == {200}
    images, _ = batch_counts()
    assert images - images_before == len(answers)


def test_overload_answers_429_with_retry_after(server: Server) -> None:
    """More clients than the in-flight limit (8): the excess get 429 with Retry-After, the
    rest are served."""
    data = encoded(Image.new("RGB", (256, 256), (9, 9, 9)))
    answers = load_until(
        server, "/translate/horse2zebra?resolution=256", data, PNG,
        lambda answer: answer.status_code == 429, clients=48,
    )  # fmt: skip
    codes = {a.status_code for a in answers}
    assert codes <= {200, 429}, codes
    refused = [a for a in answers if a.status_code == 429]
    assert refused and all(a.headers["retry-after"] == "1" for a in refused)
    assert 200 in codes


def test_batcher_overload_answers_503_with_retry_after(tmp_path: Path, model_dir: Path) -> None:
    """A latency goal no batch can meet: BentoML's batcher sheds requests; the front says 503."""
    server = start_server(
        model_dir, tmp_path, {"CYCLEGAN_MAX_LATENCY_MS": "1", "CYCLEGAN_MAX_CONCURRENCY": "64"}
    )
    try:
        wait_until(server, "/readyz", 200)
        data = encoded(Image.new("RGB", (256, 256), (9, 9, 9)))
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            responses = list(
                pool.map(
                    lambda _: post(server, "horse2zebra", data, PNG, "?resolution=256"), range(32)
                )
            )
    finally:
        stop_server(server)
    codes = {r.status_code for r in responses}
    assert codes <= {200, 503}, codes
    shed = [r for r in responses if r.status_code == 503]
    assert shed and all(r.headers["retry-after"] == "1" for r in shed)
    assert "overloaded" in shed[0].json()["error"]


def test_directions_and_probes(server: Server) -> None:
    info = httpx.get(f"{server.url}/directions").json()
    assert info["ready"] is True
    assert set(info["directions"]) == {"horse2zebra", "zebra2horse"}
    first = info["directions"]["horse2zebra"]
    assert (first["model"], first["backend"], first["device"], first["native_resolution"]) == (
        "h2z", "onnxruntime", "cpu", 64,
    )  # fmt: skip
    assert (first["source"], first["target"], first["domains"]) == (
        "horse",
        "zebra",
        ["horse", "zebra"],
    )
    assert first["example"] == {
        "input": "/examples/horse2zebra/input.jpg", "output": "/examples/horse2zebra/output.jpg",
    }  # fmt: skip
    assert info["limits"]["max_bytes"] == 3_000_000  # from CYCLEGAN_MAX_BYTES
    assert httpx.get(f"{server.url}/livez").status_code == 200
    assert httpx.get(f"{server.url}/readyz").status_code == 200


def test_metrics(server: Server) -> None:
    post(server, "horse2zebra", real_images("testA", 1)[0].read_bytes(), JPEG)
    post(server, "nowhere", b"x", JPEG)
    text = httpx.get(server.metrics_url).text
    for name in (
        'cyclegan_requests_total{direction="horse2zebra",outcome="ok"}',
        'cyclegan_requests_total{direction="unknown",outcome="client_error"}',
        "cyclegan_request_duration_seconds_bucket",
        'cyclegan_batch_size_count{backend="onnxruntime",direction="horse2zebra"}',
        "cyclegan_queue_wait_seconds_count",
        'cyclegan_inference_duration_seconds_count{backend="onnxruntime",direction="horse2zebra"}',
        "cyclegan_in_flight_requests",
    ):
        assert name in text, name
    assert "bentoml_" not in text  # BentoML's own metrics are off: only bounded series
    # the public port does not expose them
    assert httpx.get(f"{server.url}/metrics").status_code == 404


def test_sync_http_client(server: Server) -> None:
    path = real_images("testA", 1)[0]
    with bentoml.SyncHTTPClient(server.url) as client:
        out = client.translate_image(image=path, direction="horse2zebra", format="jpeg")
    with Image.open(out) as image:
        assert image.format == "JPEG" and image.size == Image.open(path).size
    with (
        bentoml.SyncHTTPClient(server.url) as client,
        pytest.raises(bentoml.exceptions.BentoMLException) as error,
    ):
        client.translate_image(image=path, direction="cat2dog")
    assert "cat2dog" in str(error.value)


def test_bad_model_package_keeps_the_service_not_ready(tmp_path: Path, model_dir: Path) -> None:
    import shutil

    broken = tmp_path / "models"
    shutil.copytree(model_dir, broken)
    (broken / "horse2zebra" / "generator_ab.safetensors").write_bytes(b"corrupted")
    server = start_server(broken, tmp_path)
    try:
        wait_until(server, "/livez", 200)
        assert httpx.get(f"{server.url}/readyz").status_code == 503
        response = post(server, "horse2zebra", real_images("testA", 1)[0].read_bytes(), JPEG)
        assert response.status_code == 503 and "sha256" in response.json()["error"]
        assert response.headers["retry-after"] == "1"
        ready = httpx.get(f"{server.url}/readyz")
        assert "generator_ab.safetensors" in ready.json()["error"]
        for answer in (response, ready, httpx.get(f"{server.url}/directions")):
            assert str(tmp_path) not in answer.text  # no server paths for clients
    finally:
        stop_server(server)
    log = server.log_text()
    assert "cannot be served" in log and "sha256" in log


def test_web_page_and_api_docs(server: Server) -> None:
    page = httpx.get(f"{server.url}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    script = httpx.get(f"{server.url}/static/app.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert "/directions" in script.text and "/translate/" in script.text
    assert httpx.get(f"{server.url}/static/../settings.py").status_code == 404
    docs = httpx.get(f"{server.url}/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert "/translate/{direction}" in httpx.get(f"{server.url}/docs.json").text


TWO_PAIRS = {"horse2zebra", "zebra2horse", "summer2winter", "winter2summer"}


def test_two_pairs_and_their_students_are_listed_and_served(two_pairs_server: Server) -> None:
    info = httpx.get(f"{two_pairs_server.url}/directions").json()
    assert set(info["directions"]) == TWO_PAIRS | {f"{name}-fast" for name in TWO_PAIRS}
    for name, direction in info["directions"].items():
        source = direction["source"]
        photo = (ROOT / "examples" / f"{source}.jpg").read_bytes()
        assert decode(post(two_pairs_server, name, photo, JPEG)).size == (256, 256), name
        for kind in ("input", "output"):
            answer = httpx.get(f"{two_pairs_server.url}{direction['example'][kind]}")
            assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg"
            assert Image.open(io.BytesIO(answer.content)).size == (64, 64)  # native resolution
    assert info["directions"]["winter2summer"]["domains"] == ["summer", "winter"]


@pytest.mark.parametrize(
    "path",
    [
        "/examples/nowhere/input.jpg",
        "/examples/horse2zebra/weights.jpg",
        "/examples/horse2zebra/../model.json",
        "/examples/..%2Fhorse2zebra/input.jpg",
        "/examples/horse2zebra/input.png",
    ],
)
def test_junk_example_paths_are_404(server: Server, path: str) -> None:
    answer = httpx.get(f"{server.url}{path}")
    assert answer.status_code == 404 and not answer.content.startswith(b"\xff\xd8")  # no JPEG


def server_timing(header: str) -> dict[str, float]:
    """An RFC-style Server-Timing value (`name;dur=ms, ...`) as {name: milliseconds}."""
    phases = {}
    for entry in header.split(","):
        name, _, params = entry.strip().partition(";")
        assert re.fullmatch(r"[a-z]+", name) and re.fullmatch(r"dur=\d+(\.\d+)?", params), entry
        phases[name] = float(params.removeprefix("dur="))
    return phases


def test_server_timing_says_where_the_time_went(server: Server) -> None:
    from serving.phases import PHASES

    response = post(server, "horse2zebra", real_images("testA", 1)[0].read_bytes(), JPEG)
    decode(response)
    phases = server_timing(response.headers["server-timing"])
    assert list(phases) == list(PHASES)  # read, decode, queue, hop, infer, encode, total
    parts = sum(ms for name, ms in phases.items() if name != "total")
    assert parts <= phases["total"] + 0.1 * len(phases)  # each rounded to 0.1 ms
    assert phases["infer"] > 0 and phases["decode"] > 0
    form = httpx.post(
        f"{server.url}/translate/horse2zebra",
        files={"image": ("h.jpg", real_images("testA", 1)[0].read_bytes(), "image/jpeg")},
        timeout=60,
    )
    assert list(server_timing(form.headers["server-timing"])) == list(PHASES)
    refused = post(server, "nowhere", b"x", JPEG)
    assert refused.status_code == 404 and "server-timing" not in refused.headers
    metrics = httpx.get(server.metrics_url).text
    labels = set(re.findall(r'^cyclegan_phase_seconds_count\{phase="([a-z]+)"\}', metrics, re.M))
    assert labels == set(PHASES)  # a fixed label set
