"""Build one FP16 TensorRT engine per direction from the package's ONNX graphs.

TensorRT 10: the fp32 graph with the FP16 builder flag (weak typing). TensorRT 11 removed that
flag and types every network strongly, so FP16 must come from the graph: it builds from the
fp16 ONNX graph. Each plan goes to PKG/engines/<gpu>-trt<version>/<direction>.plan with its
metadata beside it; a timing cache in the same folder makes rebuilds fast.

`build_settings` and `profile_shapes` are pure and tested everywhere; `build_engine` needs
TensorRT and a GPU and is verified only where they exist.
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from cyclegan.backends.tensorrt_runtime import import_tensorrt, this_gpu
from cyclegan.engines import (
    EngineMeta,
    EngineMismatch,
    ProfileShapes,
    check_compatible,
    engine_dir,
    plan_paths,
    read_meta,
)
from cyclegan.generator import SIZE_MULTIPLE
from cyclegan.onnx_names import INPUT_NAME, OUTPUT_NAME
from cyclegan.package import ModelPackage, sha256_file, write_json_atomic

log = logging.getLogger(__name__)

TIMING_CACHE = "timing.cache"


@dataclass(frozen=True)
class BuildSettings:
    graph: str  # "fp32" or "fp16": which ONNX graph to parse
    strongly_typed: bool
    fp16_flag: bool


def build_settings(tensorrt_version: str) -> BuildSettings:
    """How to get an FP16 engine out of this TensorRT version."""
    major = int(tensorrt_version.split(".")[0])
    if major < 10:
        raise ValueError(f"TensorRT {tensorrt_version} is too old: this project needs 10 or 11")
    if major == 10:
        return BuildSettings(graph="fp32", strongly_typed=False, fp16_flag=True)
    return BuildSettings(graph="fp16", strongly_typed=True, fp16_flag=False)


def profile_shapes(
    max_batch: int,
    opt_batch: int | None = None,
    min_size: int = 64,
    opt_size: int = 256,
    max_size: int = 512,
) -> ProfileShapes:
    """(batch, 3, H, W) for min/opt/max; sizes are square bounds on both H and W."""
    for name, size in (("min", min_size), ("opt", opt_size), ("max", max_size)):
        if size % SIZE_MULTIPLE:
            raise ValueError(f"--{name}-size {size} must be a multiple of {SIZE_MULTIPLE}")
    if not max_batch >= 1:
        raise ValueError("--max-batch must be at least 1")
    if not min_size <= opt_size <= max_size:
        raise ValueError(
            f"sizes must satisfy min <= opt <= max, got {min_size}, {opt_size}, {max_size}"
        )
    opt_batch = opt_batch or max(1, max_batch // 2)
    if not 1 <= opt_batch <= max_batch:
        raise ValueError(f"--opt-batch {opt_batch} must be between 1 and --max-batch {max_batch}")
    return ProfileShapes(
        min=(1, 3, min_size, min_size),
        opt=(opt_batch, 3, opt_size, opt_size),
        max=(max_batch, 3, max_size, max_size),
    )


def parse_network(trt, logger, onnx_path: Path, settings: BuildSettings, profile: ProfileShapes):  # type: ignore[no-untyped-def]
    """(builder, network, config, parser) for an ONNX graph, typed as `settings` says, with one
    optimization profile. The parser is returned because the network borrows its weights."""
    builder = trt.Builder(logger)
    strongly_typed = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(strongly_typed if settings.strongly_typed else 0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    if settings.fp16_flag:
        config.set_flag(trt.BuilderFlag.FP16)
    trt_profile = builder.create_optimization_profile()
    trt_profile.set_shape(INPUT_NAME, profile.min, profile.opt, profile.max)
    config.add_optimization_profile(trt_profile)
    return builder, network, config, parser


def build_engine(
    package: ModelPackage,
    direction: str,
    profile: ProfileShapes,
    workspace_bytes: int = 4 << 30,
) -> Path:
    """Build, save and describe one plan; returns its path."""
    trt = import_tensorrt()
    info = package.direction(direction).onnx
    if info is None or info.fp16 is None:
        raise FileNotFoundError(
            f"{direction} has no ONNX graphs yet: "
            f"run python -m compile onnx --package {package.path}"
        )
    settings = build_settings(trt.__version__)
    onnx_ref = info.fp16 if settings.graph == "fp16" else info
    onnx_path = package.path / onnx_ref.file
    gpu_name, capability = this_gpu()
    plan_path, meta_path = plan_paths(package.path, gpu_name, trt.__version__, direction)
    plan_path.parent.mkdir(parents=True, exist_ok=True)

    logger = trt.Logger(trt.Logger.WARNING)
    builder, network, config, _parser = parse_network(trt, logger, onnx_path, settings, profile)
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    cache_path = plan_path.parent / TIMING_CACHE
    cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)

    log.info(
        "building %s on %s with TensorRT %s (%s graph)",
        direction,
        gpu_name,
        trt.__version__,
        settings.graph,
    )
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise RuntimeError(f"TensorRT failed to build {direction} (see the TensorRT log above)")
    tmp = plan_path.with_suffix(".plan.tmp")
    tmp.write_bytes(memoryview(plan))
    os.replace(tmp, plan_path)
    cache_path.write_bytes(memoryview(config.get_timing_cache().serialize()))
    meta = EngineMeta(
        direction=direction,
        gpu_name=gpu_name,
        compute_capability=capability,
        tensorrt_version=trt.__version__,
        precision="fp16",
        strongly_typed=settings.strongly_typed,
        profile=profile,
        input_name=INPUT_NAME,
        output_name=OUTPUT_NAME,
        onnx_file=onnx_ref.file,
        onnx_sha256=onnx_ref.sha256,
        plan_sha256=sha256_file(plan_path),
        built_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    )
    write_json_atomic(meta_path, meta.model_dump(mode="json"))
    log.info("wrote %s", plan_path)
    return plan_path


def plan_is_current(
    package: ModelPackage,
    direction: str,
    profile: ProfileShapes,
    gpu_name: str,
    capability: tuple[int, int],
    tensorrt_version: str,
) -> bool:
    """A plan exists for this GPU and version, from today's ONNX graph, with this profile."""
    plan_path, meta_path = plan_paths(package.path, gpu_name, tensorrt_version, direction)
    info = package.direction(direction).onnx
    if not plan_path.is_file() or not meta_path.is_file() or info is None:
        return False
    meta = read_meta(meta_path)
    try:
        check_compatible(meta, gpu_name, capability, tensorrt_version)
    except EngineMismatch:
        return False
    graphs = {info.sha256} | ({info.fp16.sha256} if info.fp16 else set())
    return (
        meta.onnx_sha256 in graphs
        and meta.profile == profile
        and sha256_file(plan_path) == meta.plan_sha256
    )


def build_engines(
    package: ModelPackage, profile: ProfileShapes, workspace_bytes: int, skip_existing: bool = False
) -> list[Path]:
    """Build every direction's plan; with skip_existing, keep plans that are still current."""
    trt = import_tensorrt()
    gpu_name, capability = this_gpu()
    plans = []
    for name in package.manifest.directions:
        version = trt.__version__
        if skip_existing and plan_is_current(package, name, profile, gpu_name, capability, version):
            log.info("%s: the plan for %s is current; kept", name, gpu_name)
            plans.append(plan_paths(package.path, gpu_name, version, name)[0])
        else:
            plans.append(build_engine(package, name, profile, workspace_bytes))
    log.info("engines in %s", engine_dir(package.path, gpu_name, trt.__version__))
    return plans
