"""Time per DQN gradient step: the full Lightning path vs a plain PyTorch loop doing the same math.

Both sides sample from the same pre-filled prioritized replay buffer, compute the same double-DQN
n-step loss, clip gradients, step Adam, write priorities back and sync the target net; neither collects
env steps, so the difference is Lightning's per-step cost (with ``updates_per_step`` amortizing it).
The network and batch are small ([64, 64], batch 64) on purpose: the cheaper the math, the larger the
framework's share, so this is the worst case for the default config's [128, 128] / batch 256.

The two sides take turns in one process, ``--chunk`` updates at a time: the Lightning run's data stream
runs a chunk of plain-loop updates (timed, and left out of the Lightning time) every ``--chunk`` updates.
So both see the same machine load at every moment, which on a busy machine changes by tens of percent
within seconds; separate back-to-back runs there measure the load more than Lightning. The ratio is
total Lightning time over total plain time (wall clock; process CPU time beside it), with the median and
range of the per-chunk ratios.

    python benchmarks/lightning_overhead.py [--steps 6000] [--updates-per-step 4] [--chunk 100]
"""

from __future__ import annotations

import argparse
import statistics
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


def clocks() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def make_policy() -> DQN:
    torch.manual_seed(0)
    return DQN(env_spec=SPEC, hidden_sizes=(64, 64), lr=1e-3, target_update_interval=100, log_interval=1_000)


class PlainLoop:
    """The same update written as a plain loop (what CleanRL-style code would do)."""

    def __init__(self) -> None:
        self.policy, self.buffer = make_policy(), filled_buffer()
        self.optimizer = self.policy.configure_optimizers()
        self.times: list[tuple[float, float]] = []  # (wall, CPU) seconds of each timed chunk

    def run(self, steps: int) -> None:
        policy, buffer, optimizer = self.policy, self.buffer, self.optimizer
        start = clocks()
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
        end = clocks()
        self.times.append((end[0] - start[0], end[1] - start[1]))


class ReplayOnlyDataModule(pl.LightningDataModule):
    """Serves training steps of ``updates_per_step`` samples of a fixed buffer (each drawn when the policy
    asks for it); priorities go back to it, no env collection. With ``plain``, runs ``chunk`` plain-loop
    updates before every ``chunk`` updates and records the clocks around them."""

    def __init__(
        self,
        buffer: PrioritizedBuffer,
        updates_per_step: int,
        plain: PlainLoop | None = None,
        chunk: int = 100,
    ):
        super().__init__()
        self.buffer, self.updates_per_step, self.plain, self.chunk = buffer, updates_per_step, plain, chunk
        self.env_steps = 0
        self.max_env_steps = None
        self.marks: list[tuple[tuple[float, float], tuple[float, float]]] = []  # clocks before/after a chunk

    def train_dataloader(self) -> Iterator[Iterator[TensorDict]]:
        while True:
            if self.plain is not None:
                before = clocks()
                self.plain.run(self.chunk)
                self.marks.append((before, clocks()))
            for _ in range(self.chunk // self.updates_per_step):
                yield (self.buffer.sample(BATCH, beta=0.4) for _ in range(self.updates_per_step))

    def update_priority(self, index: torch.Tensor, priority: torch.Tensor) -> None:
        self.buffer.update_priority(index, priority)

    def metrics(self) -> dict[str, float]:
        return {}


def fit(steps: int, datamodule: ReplayOnlyDataModule) -> None:
    no_output = dict(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer = pl.Trainer(
        accelerator="cpu", max_steps=steps, max_epochs=-1, enable_model_summary=False, **no_output
    )
    trainer.fit(make_policy(), datamodule=datamodule)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=6000, help="gradient updates on each side")
    parser.add_argument("--updates-per-step", type=int, default=4)
    parser.add_argument("--chunk", type=int, default=100, help="updates per turn (a multiple of the above)")
    args = parser.parse_args()
    if args.chunk % args.updates_per_step or args.steps % args.chunk:
        parser.error("--chunk must be a multiple of --updates-per-step, and --steps of --chunk")
    torch.set_num_threads(1)
    plain = PlainLoop()
    plain.run(300)  # warm-up
    fit(300, ReplayOnlyDataModule(filled_buffer(), args.updates_per_step))
    plain.times.clear()
    # Lightning's time between two plain chunks is `chunk` updates; the first such stretch (right after
    # fit's start-up) and the one after the last plain chunk are not measured
    datamodule = ReplayOnlyDataModule(filled_buffer(), args.updates_per_step, plain, args.chunk)
    fit(args.steps + 2 * args.chunk, datamodule)
    marks = datamodule.marks[1:]
    pairs = [
        ((start[0] - end[0], start[1] - end[1]), chunk)
        for (_, end), (start, _), chunk in zip(marks, marks[1:], plain.times[2:], strict=False)
    ]
    ratios = [lightning[0] / chunk[0] for lightning, chunk in pairs]
    updates = args.chunk * len(pairs)
    (pl_wall, pl_cpu), (plain_wall, plain_cpu) = (
        (sum(wall for wall, _ in side) / updates, sum(cpu for _, cpu in side) / updates)
        for side in zip(*pairs, strict=True)
    )
    print(f"plain PyTorch loop : {plain_wall * 1e6:8.1f} us / gradient step  (CPU {plain_cpu * 1e6:8.1f} us)")
    print(
        f"Lightning (DQN)    : {pl_wall * 1e6:8.1f} us / gradient step  (CPU {pl_cpu * 1e6:8.1f} us)"
        f"  updates_per_step={args.updates_per_step}"
    )
    print(
        f"ratio              : {pl_wall / plain_wall:8.3f}  (target <= 1.10; CPU {pl_cpu / plain_cpu:.3f}; "
        f"{len(pairs)} turns of {args.chunk} updates: median {statistics.median(ratios):.3f}, "
        f"{min(ratios):.3f}-{max(ratios):.3f})"
    )


if __name__ == "__main__":
    main()
