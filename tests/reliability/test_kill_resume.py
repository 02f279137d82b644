"""kill -9 a training run at a random moment (or while it writes last.ckpt), then resume from last.ckpt.

The killed child leaves last.ckpt whole (AtomicCheckpointIO: temp file + fsync + rename), and the run resumed
from it starts with exactly the counters, replay (DQN) or weights and optimizer state (PPO) stored in it.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch

from lightning_rl.cli import RLCLI

REPO = Path(__file__).resolve().parents[2]
CONFIGS = {"dqn": REPO / "configs" / "cartpole_dqn.yaml", "ppo": REPO / "configs" / "cartpole_ppo.yaml"}
DM_KEY = {"dqn": "OffPolicyDataModule", "ppo": "OnPolicyDataModule"}
EVERY = 10  # updates between two writes of last.ckpt
CHECKPOINT_ARGS = [
    "--trainer.callbacks+=pytorch_lightning.callbacks.ModelCheckpoint",
    "--trainer.callbacks.save_last=true",
    "--trainer.callbacks.save_top_k=0",
    f"--trainer.callbacks.every_n_train_steps={EVERY}",
]
STARTUP_TIMEOUT = 60.0


def run_args(policy: str, root: Path, max_steps: int, run: bool = True) -> list[str]:
    """A CartPole run of ``policy`` logging under ``root`` that writes last.ckpt every EVERY updates."""
    per_policy = {
        "dqn": ["--data.init_args.learning_starts=200"],
        # no early stop on a solved CartPole, nor an env-step budget that ends the run before the kill
        "ppo": ["--evaluator.stop_value=null", "--data.init_args.max_env_steps=100000000"],
    }[policy]
    return [
        *(["fit"] if run else []),
        "--config",
        str(CONFIGS[policy]),
        f"--trainer.default_root_dir={root}",
        f"--trainer.max_steps={max_steps}",
        "--trainer.enable_progress_bar=false",
        "--evaluator.eval_interval=1000000",
        *per_policy,
        *CHECKPOINT_ARGS,
    ]


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint at ``path``, read with torch's safe loader (the only way these tests read one)."""
    return torch.load(path, weights_only=True)


def digest(obj: Any, h: Any = None) -> str:
    """sha256 over a nested structure of tensors and primitives, dict keys in sorted order."""
    h = hashlib.sha256() if h is None else h
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(obj, dict):
        for key in sorted(obj, key=str):
            h.update(f"K{key!r}".encode())
            digest(obj[key], h)
    elif isinstance(obj, (list, tuple)):
        h.update(f"L{len(obj)}".encode())
        for item in obj:
            digest(item, h)
    else:
        h.update(f"V{obj!r}".encode())
    return h.hexdigest()


def find(root: Path, pattern: str) -> list[Path]:
    return sorted(root.glob(f"**/{pattern}"))


def kill_child(policy: str, root: Path, rng: random.Random, during_save: bool) -> None:
    """Start a long run of ``policy``, SIGKILL it once last.ckpt exists: at a random moment, or while a
    temp file of the next save is on disk."""
    child = subprocess.Popen(
        [sys.executable, "-m", "lightning_rl", *run_args(policy, root, max_steps=10_000_000)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not find(root, "last.ckpt"):
            assert child.poll() is None, child.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, "no last.ckpt written"
            time.sleep(0.01)
        if during_save:
            deadline = time.monotonic() + STARTUP_TIMEOUT
            while not find(root, ".last.ckpt.*.tmp"):
                assert child.poll() is None, child.stderr.read().decode()[-3000:]
                assert time.monotonic() < deadline, "no save seen in progress"
                time.sleep(0.001)
        else:
            time.sleep(rng.uniform(0.0, 2.0))
        assert child.poll() is None, child.stderr.read().decode()[-3000:]
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL


class CaptureAtStart(pl.Callback):
    """What the resumed run starts from, after Lightning restored the checkpoint."""

    def on_train_start(self, trainer, pl_module):
        dm = trainer.datamodule
        self.counters = {
            "env_steps": dm.env_steps,
            "episodes": dm.counters.episodes,
            "train_iter": pl_module.train_iter,
            "global_step": trainer.global_step,
        }
        if hasattr(dm, "buffer"):
            self.hash = digest(dm.buffer.state_dict())
        else:
            self.hash = digest([pl_module.state_dict(), [opt.state_dict() for opt in trainer.optimizers]])


def saved_state(policy: str, ckpt: dict[str, Any]) -> tuple[dict[str, int], str]:
    """The counters and the replay (DQN) or weights + optimizer (PPO) hash stored in a checkpoint."""
    dm = ckpt[DM_KEY[policy]]
    counters = {
        "env_steps": dm["env_steps"],
        "episodes": dm["episodes"],
        "train_iter": ckpt["train_iter"],
        "global_step": ckpt["global_step"],
    }
    if policy == "dqn":
        return counters, digest(dm["buffer"])
    return counters, digest([ckpt["state_dict"], ckpt["optimizer_states"]])


def kill_and_resume(policy: str, root: Path, seed: int, during_save: bool) -> None:
    kill_child(policy, root, random.Random(seed), during_save)
    (last,) = find(root, "last.ckpt")
    ckpt = load_checkpoint(last)  # a kill never leaves a half-written last.ckpt behind
    counters, saved_hash = saved_state(policy, ckpt)
    assert counters["train_iter"] > 0 and counters["train_iter"] % EVERY == 0
    assert counters["global_step"] == counters["train_iter"]

    more = counters["global_step"] + 2 * EVERY
    resumed = RLCLI(args=run_args(policy, root, max_steps=more, run=False), run=False)
    capture = CaptureAtStart()
    resumed.trainer.callbacks.append(capture)
    resumed.trainer.fit(resumed.model, datamodule=resumed.datamodule, ckpt_path=str(last))

    assert capture.counters == counters
    assert capture.hash == saved_hash
    assert resumed.model.train_iter == more  # ... and the run goes on from there
    assert resumed.datamodule.env_steps > counters["env_steps"]


def test_dqn_killed_during_a_save_resumes_with_the_same_counters_and_replay(tmp_path):
    kill_and_resume("dqn", tmp_path, seed=0, during_save=True)


def test_ppo_killed_at_a_random_moment_resumes_with_the_same_counters_weights_and_optimizer(tmp_path):
    kill_and_resume("ppo", tmp_path, seed=0, during_save=False)


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["dqn", "ppo"])
@pytest.mark.parametrize("seed", range(8))
def test_killed_at_random_moments_resumes_exactly(tmp_path, policy, seed):
    kill_and_resume(policy, tmp_path, seed=seed, during_save=seed % 2 == 1)
