"""Subclassing a policy in your own script: DQN plus an auxiliary loss and a metric of its own.

The auxiliary term pulls the Q-values of *not* taken actions towards the taken action's value
a little (a toy regularizer, here to show where extra losses go). It is trained two ways:

    python examples/dqn_aux_loss.py                       # a plain pl.Trainer in this script
    lightning-rl fit --config configs/cartpole_dqn.yaml --config examples/dqn_aux_loss.yaml   # from the CLI
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from tensordict import TensorDict
from torch import Tensor

from lightning_rl import keys
from lightning_rl.callbacks import Evaluator
from lightning_rl.datamodules import OffPolicyDataModule
from lightning_rl.policies import DQN


class AuxLossDQN(DQN):
    """DQN whose loss adds ``aux_weight * mean((Q(s, a') - Q(s, a))^2)`` over untaken actions ``a'``."""

    def __init__(self, aux_weight: float = 0.01, **kwargs: Any):
        super().__init__(**kwargs)  # the base records every argument of the chain in self.hparams

    def compute_loss(self, batch: TensorDict) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        loss, td_error, extra = super().compute_loss(batch)
        q = self.net(batch[keys.OBS])
        q_taken = q.gather(1, batch[keys.ACTION].long().unsqueeze(1))
        aux = ((q - q_taken.detach()) ** 2).mean()
        extra["aux_loss"] = aux.detach()
        return loss + self.hparams.aux_weight * aux, td_error, extra


def main(max_env_steps: int = 50_000, seed: int = 0) -> dict[str, Any]:
    pl.seed_everything(seed)
    torch.set_num_threads(1)
    # the hyperparameters of configs/cartpole_dqn.yaml
    datamodule = OffPolicyDataModule(
        env_id="CartPole-v1",
        seed=seed,
        max_env_steps=max_env_steps,
        batch_size=256,
        train_freq=32,
        gradient_steps=8,
        nstep=3,
    )
    policy = AuxLossDQN(
        env_spec=datamodule.env_spec,
        hidden_sizes=(128, 128),
        lr=2e-3,
        target_tau=0.05,
        eps_end=0.04,
        eps_decay_steps=8_000,
        aux_weight=0.01,
    )
    evaluator = Evaluator(eval_interval=250, stop_value=475, save_best=False)
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=40_000,
        max_epochs=-1,
        callbacks=[evaluator],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(policy, datamodule=datamodule)
    result = {"env_steps": datamodule.env_steps, "eval_return_mean": evaluator.last_return}
    print(result)
    return result


if __name__ == "__main__":
    main()
