"""Several extraction processes: deterministic sharding, barriers, local launching.

Mechanism (no Lightning here: extraction has no training loop to share):

- Ranks come from ``torchrun`` (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``,
  ``MASTER_PORT``), multi-node included, or from ``--num_processes N``, which spawns N local
  processes with the same environment variables.
- Videos sorted by relative path are dealt out ``rank::world_size``: the same video always
  goes to the same rank, so a rerun resumes each shard where it stopped.
- Each rank writes its own feature files (distinct paths) and its own manifest part
  ``manifest.rank{r}.jsonl``; after a barrier rank 0 folds the parts into ``manifest.jsonl``.
- Coordination uses the gloo backend on every machine, GPU or not: only tiny Python objects
  (barriers, per-rank summaries) cross processes, never tensors, so NCCL brings nothing.
  The process group's timeout is long (``VIDEO_ELEATT_DIST_TIMEOUT_S``, default 7 days)
  because ranks wait at the final barrier for the slowest shard.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from datetime import timedelta
from typing import Any, TypeVar

import torch.distributed as dist

T = TypeVar("T")


def shard(items: list[T], rank: int, world_size: int) -> list[T]:
    """This rank's items: ``items[rank::world_size]`` (``items`` already sorted)."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside [0, {world_size})")
    return items[rank::world_size]


def env_rank() -> tuple[int, int]:
    """(rank, world_size) from torchrun's environment, (0, 1) without it."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def init(world_size: int) -> None:
    """Joins the process group (gloo, env://) when there are several ranks."""
    if world_size > 1 and not dist.is_initialized():
        timeout = float(os.environ.get("VIDEO_ELEATT_DIST_TIMEOUT_S", 7 * 24 * 3600))
        dist.init_process_group("gloo", timeout=timedelta(seconds=timeout))


def finish(world_size: int) -> None:
    if world_size > 1 and dist.is_initialized():
        dist.destroy_process_group()


def barrier(world_size: int) -> None:
    if world_size > 1:
        dist.barrier()


def gather_objects(obj: Any, world_size: int) -> list[Any]:
    """Every rank's ``obj`` (on every rank), in rank order."""
    if world_size == 1:
        return [obj]
    gathered: list[Any] = [None] * world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _rank_entry(function: Any, args: tuple, rank: int, world_size: int, port: int) -> None:
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world_size),
        LOCAL_WORLD_SIZE=str(world_size),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    code = function(*args)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(code or 0))


def launch_local(function: Any, args: tuple, num_processes: int) -> int:
    """Runs ``function(*args)`` in ``num_processes`` spawned ranks; returns the worst exit code.

    When one rank fails the others are stopped (they would wait at a barrier forever).
    """
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    port = free_port()
    processes = [
        context.Process(
            target=_rank_entry, args=(function, args, rank, num_processes, port), daemon=False
        )
        for rank in range(num_processes)
    ]
    for process in processes:
        process.start()
    failed = False
    while any(process.is_alive() for process in processes):
        if any(process.exitcode not in (None, 0) for process in processes):
            failed = True
            break
        time.sleep(0.2)
    if failed:
        for process in processes:
            if process.is_alive():
                process.terminate()
    for process in processes:
        process.join()
    codes = [process.exitcode or 0 for process in processes]
    return max((abs(code) for code in codes), default=0)
