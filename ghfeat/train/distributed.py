"""Minimal ``torch.distributed`` helpers for runs launched with ``torchrun`` (or plain python).

    dist_info = init_distributed()          # reads RANK / WORLD_SIZE / LOCAL_RANK
    ...
    loss = all_reduce_mean(loss.detach())
    cleanup()

With ``WORLD_SIZE`` unset or 1 no process group is created and every helper is a no-op, so the
same trainer code runs single-process on CPU or one GPU.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str | None      # None when no process group was created

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from None


def init_distributed(device: str | None = None, timeout_s: float = 1800.0) -> DistInfo:
    """Set up this process from the torchrun environment.

    Args:
        device: ``"cuda"``, ``"cpu"`` or None (CUDA when available). On CUDA the process uses
            ``cuda:LOCAL_RANK`` and it becomes the current device.
        timeout_s: collective timeout.
    Returns:
        :class:`DistInfo`. The backend is NCCL on CUDA and gloo on CPU.
    """
    rank = _env_int("RANK", 0)
    world_size = _env_int("WORLD_SIZE", 1)
    local_rank = _env_int("LOCAL_RANK", 0)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("device='cuda' was asked for but CUDA is not available")
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(f"LOCAL_RANK={local_rank} but only {torch.cuda.device_count()} CUDA "
                               "devices are visible; use --nproc-per-node <= the GPU count")
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    elif device == "cpu":
        dev = torch.device("cpu")
    else:
        raise ValueError(f"device must be 'cuda', 'cpu' or None, got {device!r}")
    backend = None
    if world_size > 1:
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if not dist.is_initialized():
            kwargs = dict(backend=backend, init_method="env://", rank=rank, world_size=world_size,
                          timeout=timedelta(seconds=timeout_s))
            if dev.type == "cuda":
                kwargs["device_id"] = dev
            dist.init_process_group(**kwargs)
    return DistInfo(rank, world_size, local_rank, dev, backend)


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_dist() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_dist() else 1


def is_main() -> bool:
    return get_rank() == 0


def barrier() -> None:
    if is_dist():
        if dist.get_backend() == "nccl":
            dist.barrier(device_ids=[torch.cuda.current_device()])
        else:
            dist.barrier()


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """Mean over ranks (a new tensor; the input is untouched). Identity without a process group."""
    if not is_dist():
        return tensor
    out = tensor.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out.div_(get_world_size())


def all_reduce_max(tensor: torch.Tensor) -> torch.Tensor:
    """Max over ranks (a new tensor). Used to agree on flags such as "a rank got SIGTERM"."""
    if not is_dist():
        return tensor
    out = tensor.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.MAX)
    return out


def all_gather_object(obj) -> list:
    """``[obj_rank0, obj_rank1, ...]`` (``[obj]`` without a process group)."""
    if not is_dist():
        return [obj]
    out = [None] * get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj, src: int = 0):
    """``obj`` of rank ``src`` on every rank."""
    if not is_dist():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def cleanup() -> None:
    if is_dist():
        dist.destroy_process_group()
