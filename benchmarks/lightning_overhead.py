"""Time per DQN gradient step: the full Lightning path vs a plain PyTorch loop doing the same math.

Both sides sample from the same pre-filled prioritized replay buffer, compute the same double-DQN
n-step loss, clip gradients, step Adam, write priorities back and sync the target net; neither collects
env steps, so the difference is Lightning's per-step cost (with ``updates_per_step`` amortizing it).
The network and batch are small ([64, 64], batch 64) on purpose: the cheaper the math, the larger the
framework's share, so this is the worst case for the default config's [128, 128] / batch 256.

The two sides run in alternating rounds (plain, Lightning, Lightning, plain, ...) so that a machine whose
load changes during the run slows both alike; each side's figure is its fastest round, in wall-clock and
in process CPU time (the latter leaves out time spent waiting for a core on a busy machine).

    python benchmarks/lightning_overhead.py [--steps 3000] [--updates-per-step 4] [--rounds 4]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator

import pytorch_lightning as pl
import torch
from tensordict import TensorDict

from lightning_rl import keys
from lightning_rl.data import PrioritizedBuffer
from lightning_rl.policies import DQN

OBS_DIM, N_ACTIONS, BATCH = 4, 2, 64
SPEC = {
    "env_id": "bench",
    "obs_shape": [OBS_DIM],
    "obs_dtype": "float32",
    "action_type": "discrete",
    "n_actions": 2,
}


def filled_buffer(size: int = 50_000) -> PrioritizedBuffer:
    buffer = PrioritizedBuffer(size, alpha=0.6, prioritized=True, seed=0)
    generator = torch.Generator().manual_seed(0)
    buffer.extend(
        TensorDict(
            {
                keys.OBS: torch.randn(size, OBS_DIM, generator=generator),
                keys.ACTION: torch.randint(0, N_ACTIONS, (size,), generator=generator),
                keys.REWARD: torch.ones(size, 1),
                keys.NEXT_OBS: torch.randn(size, OBS_DIM, generator=generator),
                keys.TERMINATED: torch.rand(size, generator=generator) < 0.05,
                keys.STEPS: torch.ones(size, dtype=torch.int64),
            },
            batch_size=[size],
        )
    )
    return buffer


class ReplayOnlyDataModule(pl.LightningDataModule):
    """Serves samples of a fixed buffer; priorities go back to it (no env collection)."""

    def __init__(self, buffer: PrioritizedBuffer, updates_per_step: int):
        super().__init__()
        self.buffer = buffer
        self.updates_per_step = updates_per_step
        self.env_steps = 0
        self.max_env_steps = None

    def train_dataloader(self) -> Iterator[Iterator[TensorDict]]:
        """Training steps of ``updates_per_step`` batches, each sampled when the policy asks for it."""
        return (self._step() for _ in iter(int, 1))

    def _step(self) -> Iterator[TensorDict]:
        return (self.buffer.sample(BATCH, beta=0.4) for _ in range(self.updates_per_step))

    def update_priority(self, index: torch.Tensor, priority: torch.Tensor) -> None:
        self.buffer.update_priority(index, priority)

    def metrics(self) -> dict[str, float]:
        return {}


def make_policy() -> DQN:
    torch.manual_seed(0)
    return DQN(env_spec=SPEC, hidden_sizes=(64, 64), lr=1e-3, target_update_interval=100, log_interval=1_000)


class Timer:
    """Wall-clock and process CPU seconds since construction."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def per(self, steps: int) -> tuple[float, float]:
        return (time.perf_counter() - self.wall) / steps, (time.process_time() - self.cpu) / steps


def time_lightning(steps: int, updates_per_step: int) -> tuple[float, float]:
    policy, datamodule = make_policy(), ReplayOnlyDataModule(filled_buffer(), updates_per_step)
    no_output = dict(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer = pl.Trainer(
        accelerator="cpu", max_steps=steps, max_epochs=-1, enable_model_summary=False, **no_output
    )
    timer = Timer()
    trainer.fit(policy, datamodule=datamodule)
    return timer.per(steps)


def time_plain(steps: int) -> tuple[float, float]:
    """The same update written as a plain loop (what CleanRL-style code would do)."""
    policy, buffer = make_policy(), filled_buffer()
    optimizer = policy.configure_optimizers()
    timer = Timer()
    for _ in range(steps):
        batch = buffer.sample(BATCH, beta=0.4)
        loss, td_error, _ = policy.compute_loss(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.net.parameters(), policy.hparams.max_grad_norm)
        optimizer.step()
        policy.train_iter += 1
        buffer.update_priority(batch[keys.INDEX], td_error)
        policy.update_target()
    return timer.per(steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--updates-per-step", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=4, help="timed runs of each side, interleaved")
    args = parser.parse_args()
    torch.set_num_threads(1)
    time_plain(300), time_lightning(300, args.updates_per_step)  # warm-up
    runs: dict[str, list[tuple[float, float]]] = {"plain": [], "lightning": []}
    for round_ in range(args.rounds):
        order = ("plain", "lightning") if round_ % 2 == 0 else ("lightning", "plain")
        for side in order:
            if side == "plain":
                runs[side].append(time_plain(args.steps))
            else:
                runs[side].append(time_lightning(args.steps, args.updates_per_step))
    (plain_wall, plain_cpu), (pl_wall, pl_cpu) = (
        tuple(min(column) for column in zip(*runs[side], strict=True)) for side in ("plain", "lightning")
    )
    per_call = args.updates_per_step
    print(f"plain PyTorch loop : {plain_wall * 1e6:8.1f} us / gradient step  (CPU {plain_cpu * 1e6:8.1f} us)")
    print(
        f"Lightning (DQN)    : {pl_wall * 1e6:8.1f} us / gradient step  (CPU {pl_cpu * 1e6:8.1f} us)"
        f"  updates_per_step={per_call}"
    )
    print(f"ratio              : {pl_wall / plain_wall:8.3f}  (CPU {pl_cpu / plain_cpu:.3f}; target <= 1.10)")


if __name__ == "__main__":
    main()
