"""Prioritized replay throughput: ours (:class:`PrioritizedBuffer`) vs raw torchrl vs cpprb, in one run.

Two workloads, each filled before timing (fill level printed):

(a) 4-float transitions (``obs``, ``action``, ``reward`` (1,), ``next_obs``, ``terminated``, ``steps``),
    capacity 1e6, filled to capacity.
(b) 84x84x4 uint8 frame-stacked observations. 1e6 x 2 x 28 KB does not fit in RAM, so: ours follows
    the DataModule's image path (:class:`~lightning_rl.data.frames.FrameStore` keeps each frame once,
    lz4-compressed; the buffer, capacity 1e6, stores ``(4,)`` int64 frame ids for ``obs`` / ``next_obs``;
    sampled ids are decoded with ``FrameStore.decode``, reported separately); cpprb uses its documented
    ``next_of="obs"`` + ``stack_compress="obs"`` memory options (each frame once, uncompressed; they rely
    on consecutive adds being consecutive steps of one env, so it is fed one stream); torchrl stores the
    full observations in a ``LazyTensorStorage`` of the largest capacity that fits (``--image-torchrl``).
    Frames are synthetic (Atari-like: flat background, bands, moving blocks).

Per library: ``add`` (extend by one vector step of 8 items, and by 256; on a full/filled buffer; the
batch is built beforehand), and the ``sample(256)`` + ``update_priority(256)`` cycle, with fresh random
priorities every cycle (new indices every cycle too, as in training: a fixed index set would be
misleadingly cache-hot). Times are the minimum over ``--repeats`` rounds of the per-call mean. Also
timed: torchrl's C++ ``SumSegmentTreeFp32`` / ``MinSegmentTreeFp32`` alone plus one packed-row gather
(the floor for any layer over them), and torchrl's single-transition ``add``.

Last, the lz4 memory ratio of :class:`FrameStore` on real Atari frames (``benchmarks/atari_frames.py``'s
collection, needs ``ale-py`` and ``opencv-python-headless``), or on the synthetic frames with a note.

One torch thread; nothing is asserted. cpprb is installed only for this benchmark::

    python benchmarks/replay_buffer.py [--repeats 7] [--cycles 400] [--skip-images] [--atari-game Pong]
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tensordict import TensorDict

from lightning_rl import keys
from lightning_rl.data.frames import FrameStore
from lightning_rl.data.replay import PrioritizedBuffer

B = 256
ALPHA, BETA = 0.6, 0.4
STACK, H, W = 4, 84, 84
FILL_CHUNK = 100_000


def best_us(fn: Callable[[int], None], calls: int, repeats: int) -> float:
    """Min over ``repeats`` rounds of the mean µs per ``fn(i)`` call (``i`` runs on across rounds)."""
    i = 0
    for _ in range(min(calls, 50)):  # warm-up
        fn(i)
        i += 1
    best = float("inf")
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        for _ in range(calls):
            fn(i)
            i += 1
        best = min(best, (time.perf_counter() - start) / calls * 1e6)
    return best


class Priorities:
    """Fresh random ``|td error|`` per cycle: a pool larger than any timed run, walked once."""

    def __init__(self, n: int, seed: int) -> None:
        self.torch = torch.rand(n, B, generator=torch.Generator().manual_seed(seed))
        self.numpy = self.torch.numpy().astype(np.float64)

    def __len__(self) -> int:
        return self.torch.shape[0]


# ---------------------------------------------------------------------- (a) 4-float transitions
def vector_transitions(n: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    return {
        "obs": torch.randn(n, 4, generator=gen),
        "action": torch.randint(0, 4, (n,), generator=gen),
        "reward": torch.randn(n, 1, generator=gen),
        "next_obs": torch.randn(n, 4, generator=gen),
        "terminated": torch.rand(n, generator=gen) < 0.01,
        "steps": torch.randint(0, 1000, (n,), generator=gen),
    }


def cpprb_vector_fields() -> dict[str, dict]:
    return {
        "obs": {"shape": 4, "dtype": np.float32},
        "action": {"shape": 1, "dtype": np.int64},
        "reward": {"shape": 1, "dtype": np.float32},
        "next_obs": {"shape": 4, "dtype": np.float32},
        "terminated": {"shape": 1, "dtype": np.bool_},
        "steps": {"shape": 1, "dtype": np.int64},
    }


def to_numpy(d: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in d.items()}


def time_adds(extend: Callable[[object], None], batches: dict[int, list], repeats: int) -> dict[int, float]:
    out = {}
    for n, pool in batches.items():
        out[n] = best_us(lambda i, pool=pool: extend(pool[i % len(pool)]), max(100, 4000 // n), repeats)
    return out


def bench_vector(args: argparse.Namespace, rows: list) -> None:
    cap, fill, cycles, rep = args.capacity, min(args.fill, args.capacity), args.cycles, args.repeats
    gen = torch.Generator().manual_seed(0)
    chunks = [vector_transitions(min(FILL_CHUNK, fill - s), gen) for s in range(0, fill, FILL_CHUNK)]
    add_batches = {n: [vector_transitions(n, gen) for _ in range(64)] for n in (8, 256)}
    prios = Priorities(cycles * (rep + 1) + 100, seed=1)
    label = f"(a) 4-float obs, capacity {cap:.0e}, fill {fill:,}"

    # ours
    buf = PrioritizedBuffer(cap, alpha=ALPHA, seed=0)
    for c in chunks:
        buf.extend(TensorDict(c, batch_size=[c["obs"].shape[0]]))
    tds = {n: [TensorDict(b, batch_size=[n]) for b in pool] for n, pool in add_batches.items()}

    def ours_cycle(i: int) -> None:
        batch = buf.sample(B, beta=BETA)
        buf.update_priority(batch[keys.INDEX], prios.torch[i])

    ours = best_us(ours_cycle, cycles, rep)
    adds = time_adds(buf.extend, tds, rep)
    rows.append((label, "ours PrioritizedBuffer", adds, ours, ""))
    gc.collect()

    # torchrl: the high-level buffer, and its C++ trees + one gather as the floor
    rows.extend(bench_torchrl(cap, chunks, tds, prios, args, label))
    rows.append(
        (label, "torchrl C++ trees + 1 gather", {}, bench_tree_floor(cap, fill, prios, args), "floor")
    )
    gc.collect()

    # cpprb
    if cpprb is None:
        rows.append((label, "cpprb", {}, float("nan"), "not installed"))
        return
    rb = cpprb.PrioritizedReplayBuffer(cap, cpprb_vector_fields(), alpha=ALPHA)
    for c in chunks:
        rb.add(**to_numpy(c))
    np_batches = {n: [to_numpy(b) for b in pool] for n, pool in add_batches.items()}

    def cpprb_cycle(i: int) -> None:
        s = rb.sample(B, beta=BETA)
        rb.update_priorities(s["indexes"], prios.numpy[i])

    cyc = best_us(cpprb_cycle, cycles, rep)
    adds = time_adds(lambda b: rb.add(**b), np_batches, rep)
    rows.append((label, "cpprb PrioritizedReplayBuffer", adds, cyc, ""))


def bench_torchrl(
    cap: int, chunks: list, tds: dict[int, list], prios: Priorities, args: argparse.Namespace, label: str
) -> list:
    from torchrl.data import LazyTensorStorage, TensorDictPrioritizedReplayBuffer

    rb = TensorDictPrioritizedReplayBuffer(
        alpha=ALPHA, beta=BETA, storage=LazyTensorStorage(cap), batch_size=B
    )
    for c in chunks:
        rb.extend(TensorDict(c, batch_size=[c["obs"].shape[0]]))

    def cycle(i: int) -> None:
        s = rb.sample()
        rb.update_priority(s["index"], prios.torch[i])

    cyc = best_us(cycle, max(50, args.cycles // 2), args.repeats)
    adds = time_adds(rb.extend, tds, args.repeats)
    single = tds[8][0][0]
    one = best_us(lambda i: rb.add(single), 200, args.repeats)
    out = [(label, "torchrl TensorDictPrioritizedRB", adds, cyc, f"add(1 item): {one:.0f} µs")]
    return out


def bench_tree_floor(cap: int, fill: int, prios: Priorities, args: argparse.Namespace) -> float:
    """Stratified scan + weights from torchrl's C++ trees, one gather of 56-byte packed rows, and both
    trees updated: the least any Python layer over them can cost."""
    from torchrl._torchrl import MinSegmentTreeFp32, SumSegmentTreeFp32

    sum_tree, min_tree = SumSegmentTreeFp32(cap), MinSegmentTreeFp32(cap)
    init = np.ones(fill, dtype=np.float32)
    sum_tree.update(np.arange(fill, dtype=np.int64), init)
    min_tree.update(np.arange(fill, dtype=np.int64), init)
    rows = torch.zeros(cap, 56, dtype=torch.uint8)
    rng = np.random.default_rng(2)
    arange = np.arange(B, dtype=np.float64)
    stored = (prios.numpy.astype(np.float32) + np.float32(1e-6)) ** np.float32(ALPHA)

    def cycle(i: int) -> None:
        total = sum_tree.query(0, fill)
        mass = ((arange + rng.random(B)) * (total / B)).astype(np.float32)
        index = np.minimum(sum_tree.scan_lower_bound(mass), fill - 1)
        weight = np.power(sum_tree[index] / min_tree.query(0, fill), -BETA)
        torch.index_select(rows, 0, torch.from_numpy(index))
        sum_tree.update(index, stored[i])
        min_tree.update(index, stored[i])
        del weight

    return best_us(cycle, args.cycles, args.repeats)


# ---------------------------------------------------------------------- (b) 84x84x4 uint8 frames
class SyntheticAtari:
    """Atari-like 84x84 grayscale frames for ``n`` envs: a flat background with a few static bands and
    blocks moving a few pixels per step (lz4 compresses them roughly as it does Pong/Breakout)."""

    def __init__(self, n: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.n = n
        self.base = np.full((n, H, W), 87, dtype=np.uint8)
        self.base[:, 0:12] = 236
        self.base[:, 76:84] = 236
        self.pos = rng.integers(14, 70, size=(n, 3, 2))
        self.vel = rng.choice([-2, -1, 1, 2], size=(n, 3, 2))
        self.shade = rng.integers(100, 250, size=(n, 3)).astype(np.uint8)
        self.t = 0

    def step(self) -> np.ndarray:
        """The next ``(n, 84, 84)`` frames."""
        self.pos += self.vel
        bounce = (self.pos < 14) | (self.pos > 68)
        self.vel[bounce] *= -1
        np.clip(self.pos, 14, 68, out=self.pos)
        frames = self.base.copy()
        for e in range(self.n):
            for j in range(3):
                y, x = self.pos[e, j]
                frames[e, y : y + 2 + 3 * j, x : x + 2] = self.shade[e, j]
        self.t += 1
        return frames


class Stacker:
    """Rolling ``(n, 4, 84, 84)`` frame stacks (``FrameStackObservation`` without resets)."""

    def __init__(self, source: SyntheticAtari) -> None:
        self.source = source
        first = source.step()
        self.stack = np.repeat(first[:, None], STACK, axis=1)

    def step(self) -> tuple[np.ndarray, np.ndarray]:
        """``(obs, next_obs)`` of one vector step."""
        obs = self.stack
        self.stack = np.concatenate((obs[:, 1:], self.source.step()[:, None]), axis=1)
        return obs, self.stack


def image_scalars(n: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    return {
        "action": torch.randint(0, 6, (n,), generator=gen),
        "reward": torch.randn(n, 1, generator=gen),
        "terminated": torch.rand(n, generator=gen) < 0.001,
        "steps": torch.randint(0, 1000, (n,), generator=gen),
    }


def bench_images(args: argparse.Namespace, rows: list, memory: list) -> FrameStore:
    cap, fill, rep = args.capacity, args.image_fill, args.repeats
    n_envs = 8
    gen = torch.Generator().manual_seed(3)
    prios = Priorities(args.cycles * (rep + 1) + 100, seed=4)
    label = f"(b) 84x84x4 uint8, fill {fill:,}"

    # ours: FrameStore (dedup + lz4) + a 1e6 buffer of frame ids, as the DataModule does
    store = FrameStore(int(1.1 * fill) + 4 * n_envs * (STACK + 1), n_envs, compress=True)
    buf = PrioritizedBuffer(cap, alpha=ALPHA, seed=0)
    stacker = Stacker(SyntheticAtari(n_envs, seed=5))
    scalars = image_scalars(n_envs, gen)

    def add_step(obs: np.ndarray, next_obs: np.ndarray) -> None:
        ids = store.encode(torch.from_numpy(obs))
        next_ids = store.encode(torch.from_numpy(next_obs))
        buf.extend(TensorDict({"obs": ids, "next_obs": next_ids, **scalars}, batch_size=[n_envs]))

    steps = fill // n_envs
    add8 = float("inf")
    for chunk in range(0, steps, 500):
        pairs = [stacker.step() for _ in range(min(500, steps - chunk))]
        start = time.perf_counter()
        for obs, next_obs in pairs:
            add_step(obs, next_obs)
        add8 = min(add8, (time.perf_counter() - start) / len(pairs) * 1e6)
    ours_fill = len(buf)

    def cycle(i: int) -> None:
        batch = buf.sample(B, beta=BETA)
        buf.update_priority(batch[keys.INDEX], prios.torch[i])

    def cycle_decode(i: int) -> None:
        batch = buf.sample(B, beta=BETA)
        store.decode(torch.stack((batch["obs"], batch["next_obs"])))
        buf.update_priority(batch[keys.INDEX], prios.torch[i])

    cyc = best_us(cycle, args.cycles, rep)
    cyc_dec = best_us(cycle_decode, max(20, args.cycles // 10), rep)
    add256 = bench_frame_add_256(cap, rep, gen)
    rows.append(
        (
            label + f" (ours: buffer cap {cap:.0e})",
            "ours FrameStore(lz4) + ids",
            {8: add8, 256: add256},
            cyc,
            f"+ decode obs/next_obs: {cyc_dec:.0f} µs",
        )
    )
    args.decode_us = cyc_dec
    stats = store.stats()
    naive = ours_fill * 2 * STACK * H * W
    ours_bytes = stats["memory_bytes"] + ours_fill * buf._storage.row_bytes
    memory.append(("ours: frame store + buffer rows", ours_bytes, naive))
    gc.collect()

    if cpprb is not None:
        bench_images_cpprb(args, rows, memory, prios, label)
        gc.collect()
    bench_images_torchrl(args, rows, prios, label)
    return store


def bench_frame_add_256(cap: int, repeats: int, gen: torch.Generator) -> float:
    """encode(obs) + encode(next_obs) + extend for a 256-env vector step (frames made beforehand)."""
    n = 256
    store = FrameStore(200 * n, n, compress=True)
    buf = PrioritizedBuffer(cap, alpha=ALPHA, seed=0)
    stacker = Stacker(SyntheticAtari(n, seed=6))
    pairs = [stacker.step() for _ in range(30)]
    scalars = image_scalars(n, gen)
    best = float("inf")
    for _ in range(repeats):
        pairs = [stacker.step() for _ in range(8)]
        start = time.perf_counter()
        for obs, next_obs in pairs:
            ids = store.encode(torch.from_numpy(obs))
            next_ids = store.encode(torch.from_numpy(next_obs))
            buf.extend(TensorDict({"obs": ids, "next_obs": next_ids, **scalars}, batch_size=[n]))
        best = min(best, (time.perf_counter() - start) / len(pairs) * 1e6)
    return best


def bench_images_cpprb(
    args: argparse.Namespace, rows: list, memory: list, prios: Priorities, label: str
) -> None:
    cap, fill, rep = args.capacity, args.image_fill, args.repeats
    fields = {
        "obs": {"shape": (H, W, STACK), "dtype": np.uint8},
        "action": {"shape": 1, "dtype": np.int64},
        "reward": {"shape": 1, "dtype": np.float32},
        "terminated": {"shape": 1, "dtype": np.bool_},
        "steps": {"shape": 1, "dtype": np.int64},
    }
    rb = cpprb.PrioritizedReplayBuffer(cap, fields, alpha=ALPHA, next_of="obs", stack_compress="obs")
    stacker = Stacker(SyntheticAtari(1, seed=7))  # one stream: next_of/stack_compress need consecutive steps
    rng = np.random.default_rng(8)

    def batch(n: int) -> dict[str, np.ndarray]:
        pairs = [stacker.step() for _ in range(n)]
        obs = np.stack([p[0][0] for p in pairs]).transpose(0, 2, 3, 1)  # stack dim last, as cpprb wants
        next_obs = np.stack([p[1][0] for p in pairs]).transpose(0, 2, 3, 1)
        return {
            "obs": obs,
            "next_obs": next_obs,
            "action": rng.integers(0, 6, (n, 1)),
            "reward": rng.standard_normal((n, 1), dtype=np.float32),
            "terminated": np.zeros((n, 1), dtype=bool),
            "steps": rng.integers(0, 1000, (n, 1)),
        }

    for _ in range(0, fill, 1000):
        rb.add(**batch(1000))
    stored = rb.get_stored_size()
    # next_of + stack_compress keep about one (84, 84) frame per stored item (plus a few per stack)
    memory.append(
        ("cpprb next_of + stack_compress (~1 frame / item)", stored * H * W, stored * 2 * STACK * H * W)
    )
    pools = {n: [batch(n) for _ in range(max(2, 512 // n))] for n in (8, 256)}

    def cycle(i: int) -> None:
        s = rb.sample(B, beta=BETA)
        rb.update_priorities(s["indexes"], prios.numpy[i])

    cyc = best_us(cycle, max(50, args.cycles // 4), rep)
    # re-adding the same consecutive batches: their next_of links are a little off, the copy cost is not
    adds = time_adds(lambda b: rb.add(**b), pools, rep)
    rows.append(
        (
            label + f" (cpprb: cap {cap:.0e}, next_of + stack_compress)",
            "cpprb PrioritizedReplayBuffer",
            adds,
            cyc,
            "",
        )
    )


def bench_images_torchrl(args: argparse.Namespace, rows: list, prios: Priorities, label: str) -> None:
    from torchrl.data import LazyTensorStorage, TensorDictPrioritizedReplayBuffer

    cap, rep = args.image_torchrl, args.repeats
    gen = torch.Generator().manual_seed(9)
    rb = TensorDictPrioritizedReplayBuffer(
        alpha=ALPHA, beta=BETA, storage=LazyTensorStorage(cap), batch_size=B
    )
    stacker = Stacker(SyntheticAtari(256, seed=10))

    def batch() -> TensorDict:
        obs, next_obs = stacker.step()
        return TensorDict(
            {"obs": torch.from_numpy(obs), "next_obs": torch.from_numpy(next_obs), **image_scalars(256, gen)},
            batch_size=[256],
        )

    for _ in range(0, cap, 256):
        rb.extend(batch())
    tds = {256: [batch() for _ in range(2)]}
    tds[8] = [td[:8].clone() for td in tds[256]]

    def cycle(i: int) -> None:
        s = rb.sample()
        rb.update_priority(s["index"], prios.torch[i])

    cyc = best_us(cycle, max(20, args.cycles // 10), rep)
    adds = time_adds(rb.extend, {8: tds[8], 256: tds[256]}, rep)
    rows.append(
        (
            label.split(", fill")[0] + f", fill {len(rb):,} (torchrl: cap {cap:.0e}, full obs)",
            "torchrl TensorDictPrioritizedRB",
            adds,
            cyc,
            "largest capacity that fits",
        )
    )


# ---------------------------------------------------------------------- lz4 ratio on Atari frames
def atari_ratio(args: argparse.Namespace, synthetic: FrameStore | None) -> str:
    path = Path(__file__).with_name("atari_frames.py")
    missing = [m for m in ("ale_py", "cv2") if importlib.util.find_spec(m) is None]
    if not missing and args.atari_transitions > 0:
        spec = importlib.util.spec_from_file_location("atari_frames", path)
        atari = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(atari)
        r = atari.run_game(args.atari_game, 8, args.atari_transitions, 60.0, seed=0)
        return (
            f"lz4 on real Atari frames ({args.atari_game}, {r['transitions']:.0f} transitions, 8 envs, "
            f"random policy): {r['lz4_ratio']:.1f}x per frame "
            f"({r['payload_bytes_per_frame']:.0f} B of 7,056); "
            f"with dedup {r['total_ratio']:.0f}x smaller than obs + next_obs "
            f"({r['naive_mb']:.0f} -> {r['dedup_lz4_mb']:.1f} MiB)"
        )
    why = f"need {' and '.join(missing)}" if missing else "skipped (--atari-transitions 0)"
    note = f"(real Atari frames {why}: synthetic frames instead)"
    if synthetic is None:
        return f"lz4 ratio: skipped {note}"
    return f"lz4 ratio on synthetic frames: {synthetic.stats()['compression_ratio']:.1f}x per frame {note}"


# ---------------------------------------------------------------------- table
def print_table(rows: list, memory: list) -> None:
    current = None
    head = (
        f"  {'library':<32} {'add 8 µs (µs/item)':>20} {'add 256 µs (µs/item)':>22} {'sample+update µs':>17}"
    )
    for label, name, adds, cycle, note in rows:
        if label != current:
            print(f"\n{label}\n{head}")
            current = label
        cells = []
        for n in (8, 256):
            v = adds.get(n)
            cells.append("-" if v is None else f"{v:,.0f} ({v / n:.2f})")
        print(f"  {name:<32} {cells[0]:>20} {cells[1]:>22} {cycle:>17,.0f}  {note}")
    if memory:
        print("\nmemory of obs + next_obs (vs a naive buffer of full observations):")
        for name, nbytes, naive in memory:
            print(f"  {name:<52} {nbytes / 2**20:>9,.0f} MiB  ({naive / nbytes:.0f}x smaller)")


def ratio_lines(rows: list, decode_us: float | None) -> None:
    by = {(label.split(" (")[0], name.split()[0]): cycle for label, name, _, cycle, _ in rows}
    for work in sorted({k[0] for k in by}):
        ours, cp = by.get((work, "ours")), by.get((work, "cpprb"))
        if not (ours and cp and cp == cp):
            continue
        if work.startswith("(a)"):
            print(f"{work}: ours / cpprb sample+update = {ours / cp:.2f}")
        else:  # cpprb returns the frames; ours returns frame ids until decoded
            print(
                f"{work}: ours / cpprb sample+update = {ours / cp:.2f} with frame ids, "
                f"{decode_us / cp:.2f} with the frames decoded"
            )


try:
    import cpprb
except ImportError:  # installed for this benchmark only
    cpprb = None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--capacity", type=int, default=1_000_000)
    parser.add_argument("--fill", type=int, default=1_000_000, help="(a) items added before timing")
    parser.add_argument("--image-fill", type=int, default=200_000, help="(b) transitions added before timing")
    parser.add_argument("--image-torchrl", type=int, default=50_000, help="(b) torchrl capacity (full obs)")
    parser.add_argument("--cycles", type=int, default=400, help="sample+update cycles per repeat")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--skip-images", action="store_true")
    parser.add_argument("--atari-game", default="Pong")
    parser.add_argument("--atari-transitions", type=int, default=10_000)
    args = parser.parse_args()
    torch.set_num_threads(1)

    rows: list = []
    memory: list = []
    bench_vector(args, rows)
    store = None if args.skip_images else bench_images(args, rows, memory)
    print_table(rows, memory)
    print()
    ratio_lines(rows, getattr(args, "decode_us", None))
    print(atari_ratio(args, store))
    print(
        f"(one torch thread; min over {args.repeats} repeats of the mean per call; batch {B}, alpha {ALPHA}, "
        f"beta {BETA}; fresh random priorities and indices every cycle)"
    )


if __name__ == "__main__":
    main()
