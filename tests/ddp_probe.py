"""A callback for the DDP test: each rank writes what it ended with to ``<default_root_dir>/rank<r>.json``."""

from __future__ import annotations

import json
import os

import pytorch_lightning as pl
import torch


class RankReport(pl.Callback):
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        dm = trainer.datamodule
        params = torch.cat([p.detach().flatten() for p in pl_module.net.parameters()])
        report = {
            "rank": trainer.global_rank,
            "world_size": trainer.world_size,
            "param_sum": params.double().sum().item(),
            "param_abs_sum": params.double().abs().sum().item(),
            "env_steps": dm.env_steps,
            "train_iter": pl_module.train_iter,
        }
        if hasattr(dm, "buffer"):  # off-policy: what each rank's replay holds
            report["buffer_size"] = len(dm.buffer)
            report["first_obs"] = dm.buffer.get(torch.tensor([0]))["obs"].flatten().tolist()
        else:  # on-policy: the observation normalizer each rank learned from its own envs
            report["rollouts"] = dm.rollouts
            report["obs_mean"] = None if dm.obs_stats is None else dm.obs_stats.mean.tolist()
        with open(os.path.join(trainer.default_root_dir, f"rank{trainer.global_rank}.json"), "w") as f:
            json.dump(report, f)
