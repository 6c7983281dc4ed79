"""`python -m loadtest.profile`: py-spy and the OS on a saturated server."""

from pathlib import Path

import pytest

from loadtest.profile import activity, main, process_name, summarise

SUPERVISOR = 'process 10:"python -m serving"'
FRONT = 'process 11:"python -m _bentoml_impl.worker.service --service-name Translator"'
GENERATOR = 'process 12:"python -m _bentoml_impl.worker.service cyclegan-generator"'


def test_stacks_are_filed_by_process_and_innermost_known_activity() -> None:
    raw = "\n".join([
        f"{SUPERVISOR};{GENERATOR};run (asyncio/runners.py:118);work (serving/batcher.py:70);"
        "translate (cyclegan/backends/onnx_runtime.py:90);run (onnxruntime/capi/session.py:220) 40",
        f"{SUPERVISOR};{FRONT};run (asyncio/runners.py:118);answer (serving/service.py:250);"
        "save (PIL/Image.py:2400);_save (PIL/PngImagePlugin.py:1300) 7",
        f"{SUPERVISOR};{FRONT};run (asyncio/runners.py:118);"
        "_run_once (asyncio/base_events.py:1900) 3",
        # the service's own PNG writer runs in a worker thread (anyio's frames outside it)
        f"{SUPERVISOR};{FRONT};run (anyio/_backends/_asyncio.py:900);"
        "restore_and_encode (serving/service.py:233);encode (serving/image_io.py:290);"
        "write_png (serving/png_writer.py:60) 5",
        f"{SUPERVISOR};{FRONT};decode_and_fit (serving/service.py:196);"
        "load (PIL/ImageFile.py:290) 2",
        f"{SUPERVISOR};main (serving/__main__.py:30) 1",
        "garbage line without a count",
    ])  # fmt: skip
    counts = summarise(raw)
    assert counts["generator"] == {"inference (ONNX Runtime)": 40}
    assert counts["front"] == {
        "image encode": 12, "HTTP, asyncio, BentoML": 3, "image decode": 2,
    }  # fmt: skip
    assert counts["supervisor"] == {"other Python": 1}
    assert process_name(f"{SUPERVISOR};{GENERATOR};x (a.py:1)") == "generator"
    assert activity("main (app.py:3);helper (app.py:9)") == "other Python"


@pytest.mark.slow
@pytest.mark.parametrize("generator", ["worker", "in-process"])
def test_profile_of_a_real_server_finds_inference_where_it_runs(
    model_dir: Path, tmp_path: Path, generator: str
) -> None:
    out = tmp_path / "BENCHMARKS.md"
    image = sorted((Path(__file__).parents[1] / "fixtures/horse2zebra/testA").iterdir())[0]
    argv = [
        "--models", str(model_dir), "--direction", "horse2zebra", "--image", str(image),
        "--clients", "4", "--seconds", "6", "--out", str(out),
        "--env", f"CYCLEGAN_GENERATOR={generator}",
    ]  # fmt: skip
    assert main(argv) == 0
    text = out.read_text()
    assert text.startswith("# Benchmarks") and "## 7. Where the time goes" in text
    runs_the_model = "generator" if generator == "worker" else "front"
    assert f"| {runs_the_model} | inference (ONNX Runtime) |" in text
    rows = [line for line in text.splitlines() if line.startswith(f"| {runs_the_model} |")]
    assert rows and float(rows[0].split("|")[2]) > 0  # CPU ms per image, from the OS
    assert ("| generator |" in text) == (generator == "worker")
