"""For the DDP tests: a two-rank launch through the real CLI, and a callback with which each rank writes
what it ended with to ``<default_root_dir>/rank<r>.json``."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytorch_lightning as pl
import torch

# the CLI argument that adds RankReport (run_two_ranks and run_two_nodes read the files it writes)
RANK_REPORT = "--trainer.callbacks+=tests.ddp_probe.RankReport"


class RankReport(pl.Callback):
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        dm = trainer.datamodule
        params = torch.cat([p.detach().flatten() for p in pl_module.parameters()])  # targets' too
        report = {
            "rank": trainer.global_rank,
            "world_size": trainer.world_size,
            "param_sum": params.double().sum().item(),
            "param_abs_sum": params.double().abs().sum().item(),
            "env_steps": dm.env_steps,
            "train_iter": pl_module.train_iter,
            "direct_update": pl_module._direct_update_applies(pl_module.optimizers()),
        }
        if hasattr(dm, "buffer"):  # off-policy: what each rank's replay holds
            report["buffer_size"] = len(dm.buffer)
            report["first_obs"] = dm.buffer.get(torch.tensor([0]))["obs"].flatten().tolist()
        else:  # on-policy: the observation normalizer each rank learned from its own envs
            report["rollouts"] = dm.rollouts
            report["obs_mean"] = None if dm.obs_stats is None else dm.obs_stats.mean.tolist()
        with open(os.path.join(trainer.default_root_dir, f"rank{trainer.global_rank}.json"), "w") as f:
            json.dump(report, f)


class LightningUpdatePath(pl.Callback):
    """Makes the policy take Lightning's manual_backward / clip_gradients / optimizer.step on every update."""

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        pl_module.direct_optimizer_update = False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_two_ranks(args: list[str], root: Path) -> list[dict]:
    """``python -m lightning_rl *args`` as 2 DDP ranks (gloo on loopback; ``args`` must add
    :data:`RANK_REPORT` and write under ``root``); returns their reports."""
    repo = Path(__file__).resolve().parents[1]
    ddp = ["--trainer.strategy=ddp", "--trainer.devices=2", "--trainer.accelerator=cpu"]
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "PYTHONPATH": str(repo)}
    proc = subprocess.run(
        [sys.executable, "-m", "lightning_rl", *args, *ddp],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads((root / f"rank{r}.json").read_text()) for r in (0, 1)]


def run_two_nodes(args: list[str], root: Path, env: dict[str, str] | None = None) -> list[dict]:
    """``python -m lightning_rl *args`` as 2 "nodes" x 1 process, each launched by its own ``torchrun
    --nnodes 2 --node_rank r`` on 127.0.0.1 (gloo), as two machines would; returns the ranks' reports."""
    repo = Path(__file__).resolve().parents[1]
    port = free_port()
    ddp = [
        "--trainer.strategy=ddp",
        "--trainer.devices=1",
        "--trainer.num_nodes=2",
        "--trainer.accelerator=cpu",
    ]
    env = {**os.environ, "PYTHONPATH": str(repo), **(env or {})}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1"]
    rendezvous = ["--master_addr=127.0.0.1", f"--master_port={port}"]
    nodes = [
        subprocess.Popen(
            [*torchrun, f"--node_rank={node}", *rendezvous, "-m", "lightning_rl", *args, *ddp],
            cwd=repo,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for node in (0, 1)
    ]
    outputs = [node.communicate(timeout=300) for node in nodes]
    for node, (_, stderr) in zip(nodes, outputs, strict=True):
        assert node.returncode == 0, stderr[-3000:]
    return [json.loads((root / f"rank{r}.json").read_text()) for r in (0, 1)]
