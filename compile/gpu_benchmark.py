"""Check and time the CUDA paths: `python -m compile.gpu_benchmark [--package PKG] [--out FILE]`.

For the ResNet-9 generator (ngf 64, 9 blocks; random init, or a package's generator) at
256x256: torch fp32, torch fp16 (channels_last) with and without CUDA graphs, ONNX Runtime
with the CUDA provider and TensorRT where installed. For each: PSNR against torch fp32 and
images per second at batch 1, 8 and 16. Prints a Markdown table (for BENCHMARKS.md) and
writes the figures as JSON. Needs a CUDA GPU.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from compile.onnx_export import psnr_db
from cyclegan.generator import GeneratorConfig, build_generator, count_macs, init_weights

log = logging.getLogger("compile.gpu_benchmark")
BATCHES = (1, 8, 16)
SIZE = 256


def cuda_timer(run: Callable[[], object], images: int, seconds: float = 2.0) -> float:
    """Images per second of `run`, timed with CUDA events after a warm-up."""
    for _ in range(3):
        run()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    count, elapsed = 0, 0.0
    start.record()
    while elapsed < seconds:
        run()
        count += 1
        end.record()
        end.synchronize()
        elapsed = start.elapsed_time(end) / 1000
    return images * count / elapsed


def torch_runner(
    net: torch.nn.Module, batch: int, fp16: bool, graphs: bool
) -> tuple[Callable[[], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]:
    """(timed call, call on given input) for one configuration."""
    dtype = torch.float16 if fp16 else torch.float32
    model = net.to("cuda", dtype).to(memory_format=torch.channels_last).eval()
    static = torch.zeros(batch, 3, SIZE, SIZE, device="cuda", dtype=dtype).contiguous(
        memory_format=torch.channels_last
    )

    @torch.inference_mode()
    def eager(x: torch.Tensor) -> torch.Tensor:
        return model(x.to(dtype).contiguous(memory_format=torch.channels_last)).float()

    if not graphs:
        return (lambda: eager(static)), eager
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream), torch.inference_mode():
        for _ in range(3):  # warm up on a side stream before capture, as the docs ask
            model(static)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph), torch.inference_mode():
        static_out = model(static)

    def replay(x: torch.Tensor) -> torch.Tensor:
        static.copy_(x.to(dtype))
        graph.replay()
        return static_out.float()

    return graph.replay, replay


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m compile.gpu_benchmark", description=__doc__)
    parser.add_argument("--package", type=Path, help="benchmark this package's first direction")
    parser.add_argument("--out", type=Path, default=Path("gpu_benchmark.json"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not torch.cuda.is_available():
        log.error("needs a CUDA GPU; PyTorch sees none")
        return 2
    torch.backends.cudnn.benchmark = True
    if args.package:
        from cyclegan.package import load_package

        package = load_package(args.package)
        direction = next(iter(package.manifest.directions))
        config = package.direction(direction).generator
        make_net = lambda: package.load_generator(direction)  # noqa: E731
    else:
        config = GeneratorConfig(ngf=64, n_blocks=9)
        torch.manual_seed(0)
        reference_net = build_generator(config)
        init_weights(reference_net)
        state = reference_net.state_dict()

        def make_net() -> torch.nn.Module:
            net = build_generator(config)
            net.load_state_dict(state)
            return net

    x = torch.rand(16, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0)) * 2 - 1
    reference = {}
    results: list[dict[str, object]] = []
    for label, fp16, graphs in [
        ("torch fp32", False, False),
        ("torch fp16", True, False),
        ("torch fp16 + CUDA graphs", True, True),
    ]:
        row: dict[str, object] = {"backend": label, "images_per_second": {}}
        for batch in BATCHES:
            timed, call = torch_runner(make_net(), batch, fp16, graphs)
            out = call(x[:batch].cuda()).cpu().numpy()
            if label == "torch fp32":
                reference[batch] = out
            row["psnr_db"] = round(psnr_db(reference[batch], out), 2)
            row["images_per_second"][batch] = round(cuda_timer(timed, batch), 1)  # type: ignore[index]
        results.append(row)
        log.info("%s", row)

    with tempfile.TemporaryDirectory() as tmp:
        results += onnx_and_tensorrt_rows(make_net(), Path(tmp), x, reference)

    macs = count_macs(config, SIZE, SIZE)
    header = (
        f"{torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
        f"{config.arch} ngf {config.ngf} x {config.n_blocks} blocks "
        f"({macs / 1e9:.1f} GMAC at {SIZE}x{SIZE})"
    )
    lines = [
        header,
        "",
        "| backend | PSNR vs fp32 (dB) | " + " | ".join(f"img/s b{b}" for b in BATCHES) + " |",
        "|---|---|" + "---|" * len(BATCHES),
    ]
    for row in results:
        speeds = row.get("images_per_second") or {}
        cells = [str(speeds.get(b, "-")) for b in BATCHES]  # type: ignore[union-attr]
        lines.append(
            f"| {row['backend']} | {row.get('psnr_db', '-')} | " + " | ".join(cells) + " |"
        )
    print("\n".join(lines))
    args.out.write_text(
        json.dumps(
            {"device": header, "python": platform.python_version(), "results": results}, indent=2
        )
    )
    return 0


def onnx_and_tensorrt_rows(
    net: torch.nn.Module, folder: Path, x: torch.Tensor, reference: dict[int, np.ndarray]
) -> list[dict[str, object]]:
    """ONNX Runtime (CUDA provider) and TensorRT rows, each skipped with a note when absent."""
    from compile.onnx_export import convert_fp16, export_onnx

    rows: list[dict[str, object]] = []
    model = export_onnx(net.cpu(), folder / "g.onnx")
    convert_fp16(model, folder / "g.fp16.onnx")
    try:
        from cyclegan.backends.onnx_runtime import OnnxRuntimeBackend

        backend = OnnxRuntimeBackend(folder / "g.fp16.onnx", use_cuda=True)
        row: dict[str, object] = {"backend": "onnxruntime cuda fp16", "images_per_second": {}}
        for batch in BATCHES:
            data = x[:batch].numpy()
            row["psnr_db"] = round(psnr_db(reference[batch], backend.translate(data)), 2)
            start = time.perf_counter()
            for _ in range(10):
                backend.translate(data)
            row["images_per_second"][batch] = round(10 * batch / (time.perf_counter() - start), 1)  # type: ignore[index]
        rows.append(row)
    except Exception as error:  # absent provider: say so in the table rather than stop
        rows.append({"backend": f"onnxruntime cuda (skipped: {str(error)[:80]})"})
    try:
        rows.append(tensorrt_row(folder, x, reference))
    except Exception as error:
        rows.append({"backend": f"tensorrt (skipped: {str(error)[:80]})"})
    return rows


def tensorrt_row(
    folder: Path, x: torch.Tensor, reference: dict[int, np.ndarray]
) -> dict[str, object]:
    from compile.tensorrt_build import build_settings, parse_network, profile_shapes
    from cyclegan.backends.tensorrt_runtime import import_tensorrt

    trt = import_tensorrt()
    settings = build_settings(trt.__version__)
    logger = trt.Logger(trt.Logger.WARNING)
    graph = folder / ("g.fp16.onnx" if settings.graph == "fp16" else "g.onnx")
    profile = profile_shapes(max(BATCHES), 8, SIZE, SIZE, SIZE)
    builder, network, config, _parser = parse_network(trt, logger, graph, settings, profile)
    engine = trt.Runtime(logger).deserialize_cuda_engine(
        builder.build_serialized_network(network, config)
    )
    context = engine.create_execution_context()
    row: dict[str, object] = {
        "backend": f"tensorrt {trt.__version__} fp16",
        "images_per_second": {},
    }
    stream = torch.cuda.current_stream().cuda_stream
    for batch in BATCHES:
        inp = x[:batch].cuda().contiguous()
        out = torch.empty_like(inp)
        context.set_input_shape("image", tuple(inp.shape))
        context.set_tensor_address("image", inp.data_ptr())
        context.set_tensor_address("translated", out.data_ptr())
        context.execute_async_v3(stream)
        row["psnr_db"] = round(psnr_db(reference[batch], out.cpu().numpy()), 2)
        row["images_per_second"][batch] = round(
            cuda_timer(lambda: context.execute_async_v3(stream), batch), 1
        )  # type: ignore[index]
    return row


if __name__ == "__main__":
    sys.exit(main())
