"""Where and how a training process runs: device, mixed precision, and its place under DDP.

Launched by `torchrun`, each process reads its rank from the environment and joins the
process group (NCCL on GPUs, gloo on CPUs); alone, it is rank 0 of 1 and never touches
`torch.distributed`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from cyclegan.cpu_features import CPUINFO, cpu_has_bf16

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Placement:
    device: torch.device
    autocast_dtype: torch.dtype | None
    rank: int
    world: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def any_rank(self, flag: bool) -> bool:
        """True on every rank if `flag` is true on any: ranks must stop at the same step."""
        tensor = torch.tensor([1.0 if flag else 0.0], device=self.device)
        if self.world > 1:
            dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return bool(tensor.item() > 0)


def pick_device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("--device cuda was asked for, but PyTorch sees no CUDA device")
        return torch.device("cuda", local_rank)
    return torch.device(name)


def pick_autocast(
    precision: str, device: torch.device, cpuinfo: Path = CPUINFO
) -> torch.dtype | None:
    """`auto`: mixed precision on GPUs (bf16 where supported, else fp16), and bf16 on a CPU
    with native bf16: at equal CPU time it trained better than fp32 in the ablation
    (docs/ablation.md), at 1.46x the steps. Elsewhere fp32."""
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if cpu_has_bf16(cpuinfo) else None
    if precision == "bf16" and device.type == "cpu" and not cpu_has_bf16(cpuinfo):
        # emulated bf16 is not a little slower but about 100x: 80 s a step against 0.65 in fp32
        log.warning(
            "--precision bf16 on a CPU without native bf16 (no avx512_bf16 or amx_bf16): "
            "expect it to be about 100 times slower than fp32; --precision auto picks fp32 here"
        )
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def setup_distributed() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, 0
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend=backend)
    return dist.get_rank(), world, int(os.environ.get("LOCAL_RANK", "0"))


def check_replicas_in_sync(modules: tuple[nn.Module, ...], placement: Placement, step: int) -> None:
    """Under DDP every rank must hold the same weights; a cheap per-tensor checksum proves it."""
    if placement.world == 1:
        return
    checksum = torch.stack(
        [p.detach().double().sum() for module in modules for p in module.parameters()]
    ).to(placement.device)
    gathered = [torch.empty_like(checksum) for _ in range(placement.world)]
    dist.all_gather(gathered, checksum)
    worst = max(float((g - gathered[0]).abs().max()) for g in gathered)
    if worst != 0.0:
        raise RuntimeError(f"DDP replicas diverged at step {step} (checksum gap {worst})")
    if placement.is_main:
        log.info("step %d: %d DDP replicas in sync", step, placement.world)
