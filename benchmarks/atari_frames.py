"""Replay memory of frame-stacked Atari observations: naive vs :class:`FrameStore` (dedup, dedup + lz4).

For each game, 8 in-process envs (``ALE/<game>-v5`` made with ``frameskip=1``, gymnasium's
``AtariPreprocessing`` (frame skip 4, 84x84 grayscale) and ``FrameStackObservation(4)``, ``SAME_STEP``
autoreset as in training) are stepped with a uniformly random policy through the project's
``VectorCollector``. Each vector step's ``obs`` and true ``next_obs`` are encoded the way the DataModule
does, into an lz4 store and into a raw (``compress=False``) store, whose rings hold every frame. Printed:

* bytes of ``obs`` + ``next_obs`` as a naive buffer stores them, and the frame stores' bytes (held
  frames, plus the 2k int64 ids per transition a buffer keeps instead of the observations);
* encode cost per vector step (``obs`` + ``next_obs``) and decode cost of random 256-transition
  batches (``obs`` and ``next_obs`` ids decoded in one call); the raw store's decode is a plain gather,
  i.e. what sampling a naive buffer costs;
* every 100th step, ``decode(encode(x)) == x`` is checked.

Needs ``ale-py`` (ships the ROMs; importing it registers the ``ALE/`` ids with gymnasium 1.x, which
``gymnasium.register_envs(ale_py)`` does explicitly) and ``opencv-python-headless`` (used by
``AtariPreprocessing``). Figures are printed, nothing is asserted about time.

    python benchmarks/atari_frames.py [--games Pong Breakout] [--transitions 50000] [--time-budget 150]
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import ale_py
import gymnasium as gym
import numpy as np
import torch
from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation

from lightning_rl.data.collector import VectorCollector
from lightning_rl.data.frames import FrameStore
from lightning_rl.envs.vector import make_vector_env

gym.register_envs(ale_py)

STACK = 4
BATCH = 256


def make_atari(game: str) -> gym.Env:
    # v5 skips 4 frames itself by default; AtariPreprocessing does the skipping (with max-pooling).
    env = gym.make(f"ALE/{game}-v5", frameskip=1)
    env = AtariPreprocessing(env, frame_skip=4, screen_size=84, grayscale_obs=True, noop_max=30)
    return FrameStackObservation(env, STACK)


def run_game(game: str, n_envs: int, transitions: int, time_budget: float, seed: int) -> dict[str, float]:
    env = make_vector_env(partial(make_atari, game), n_envs, "sync")
    env.action_space.seed(seed)
    collector = VectorCollector(env)
    collector.reset(seed=seed)
    steps = -(-transitions // n_envs)
    # Sized as FrameStore's docstring advises for a buffer of all transitions (nstep 1).
    capacity = int(1.1 * steps * n_envs) + 4 * n_envs * (STACK + 1)
    packed = FrameStore(capacity, n_envs, compress=True)
    raw = FrameStore(capacity, n_envs, compress=False)

    def act(obs: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(env.action_space.sample())

    obs_ids, next_ids = [], []
    env_s = packed_s = raw_s = 0.0
    frame_bytes = 0
    start = time.perf_counter()
    for t in range(steps):
        tick = time.perf_counter()
        step = collector.step(act)
        tock = time.perf_counter()
        ids = (packed.encode(step.obs), packed.encode(step.next_obs))
        tack = time.perf_counter()
        raw_ids = (raw.encode(step.obs), raw.encode(step.next_obs))
        env_s += tock - tick
        packed_s += tack - tock
        raw_s += time.perf_counter() - tack
        if not all(torch.equal(a, b) for a, b in zip(ids, raw_ids, strict=True)):
            raise AssertionError("compressed and raw stores returned different ids")
        if t % 100 == 0 and not torch.equal(
            packed.decode(torch.stack(ids)), torch.stack([step.obs, step.next_obs])
        ):
            raise AssertionError(f"decode(encode(x)) != x at step {t}")
        obs_ids.append(ids[0])
        next_ids.append(ids[1])
        frame_bytes = step.obs[0, 0].numel()
        if time.perf_counter() - start > time_budget:
            break
    env.close()
    n_steps = len(obs_ids)
    obs_ids_t, next_ids_t = torch.cat(obs_ids), torch.cat(next_ids)  # (N, k) each
    held = packed.available(obs_ids_t) & packed.available(next_ids_t)  # what the buffer would still hold
    evicted = int((~held).sum())
    obs_ids_t, next_ids_t = obs_ids_t[held], next_ids_t[held]

    gen = torch.Generator().manual_seed(seed)
    batches = [torch.randint(0, obs_ids_t.shape[0], (BATCH,), generator=gen) for _ in range(40)]
    decode_us = {}
    for name, store in (("lz4", packed), ("raw", raw)):
        store.decode(torch.stack([obs_ids_t[batches[0]], next_ids_t[batches[0]]]))  # warm-up
        tick = time.perf_counter()
        for idx in batches:
            store.decode(torch.stack([obs_ids_t[idx], next_ids_t[idx]]))
        decode_us[name] = (time.perf_counter() - tick) / len(batches) * 1e6
    unique = np.mean([torch.stack([obs_ids_t[i], next_ids_t[i]]).unique().numel() for i in batches])

    n_trans = obs_ids_t.shape[0]
    stats = packed.stats()
    if evicted:  # the ring sizing rule failed: the benchmark reports it rather than hiding it
        print(f"{game}: {evicted} transitions lost frames to the ring (capacity {capacity})")
    ids_bytes = n_trans * 2 * STACK * 8
    naive = n_trans * 2 * STACK * frame_bytes
    dedup = stats["raw_bytes"] + ids_bytes
    dedup_lz4 = stats["memory_bytes"] + ids_bytes
    return {
        "transitions": n_trans,
        "episodes": collector.counters.episodes,
        "frames_per_transition": stats["frames_stored"] / (n_steps * n_envs),
        "naive_mb": naive / 2**20,
        "dedup_mb": dedup / 2**20,
        "dedup_lz4_mb": dedup_lz4 / 2**20,
        "dedup_ratio": naive / dedup,
        "total_ratio": naive / dedup_lz4,
        "lz4_ratio": stats["compression_ratio"],
        "payload_bytes_per_frame": stats["stored_bytes"] / stats["frames_held"],
        "env_us": env_s / n_steps * 1e6,
        "encode_lz4_us": packed_s / n_steps * 1e6,
        "encode_raw_us": raw_s / n_steps * 1e6,
        "decode_lz4_us": decode_us["lz4"],
        "decode_raw_us": decode_us["raw"],
        "unique_frames_per_batch": float(unique),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--games", nargs="+", default=["Pong", "Breakout"])
    parser.add_argument("--n-envs", type=int, default=8)
    parser.add_argument("--transitions", type=int, default=50_000, help="per game (stops earlier on budget)")
    parser.add_argument("--time-budget", type=float, default=150.0, help="seconds of collection per game")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)

    rows = {g: run_game(g, args.n_envs, args.transitions, args.time_budget, args.seed) for g in args.games}
    lines = [
        ("transitions (episodes)", lambda r: f"{r['transitions']:.0f} ({r['episodes']:.0f})"),
        ("frames stored / transition", lambda r: f"{r['frames_per_transition']:.3f}"),
        ("naive obs+next_obs MiB", lambda r: f"{r['naive_mb']:.1f}"),
        ("FrameStore dedup MiB (ratio)", lambda r: f"{r['dedup_mb']:.1f} ({r['dedup_ratio']:.1f}x)"),
        ("FrameStore dedup+lz4 MiB (ratio)", lambda r: f"{r['dedup_lz4_mb']:.2f} ({r['total_ratio']:.0f}x)"),
        ("lz4 alone: ratio, B/frame", lambda r: f"{r['lz4_ratio']:.1f}x, {r['payload_bytes_per_frame']:.0f}"),
        ("env step µs / vector step", lambda r: f"{r['env_us']:.0f}"),
        (
            "encode µs / vector step lz4 | raw",
            lambda r: f"{r['encode_lz4_us']:.0f} | {r['encode_raw_us']:.0f}",
        ),
        ("decode µs / 256 batch lz4 | raw", lambda r: f"{r['decode_lz4_us']:.0f} | {r['decode_raw_us']:.0f}"),
        ("unique frames / 256 batch", lambda r: f"{r['unique_frames_per_batch']:.0f}"),
    ]
    width = max(len(name) for name, _ in lines)
    print(f"{'':<{width}}  " + "  ".join(f"{g:>18}" for g in rows))
    for name, fmt in lines:
        print(f"{name:<{width}}  " + "  ".join(f"{fmt(r):>18}" for r in rows.values()))
    print(
        f"({args.n_envs} envs, k={STACK}; MiB count held frames plus 2k int64 ids per transition; "
        "dedup+lz4 counts all allocated store memory)"
    )


if __name__ == "__main__":
    main()
