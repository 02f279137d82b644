"""De-duplicated, lz4-compressed storage of stacked image frames for replay.

A frame-stacked observation ``(k, H, W)`` shares ``k - 1`` frames with the previous one, and a
transition's ``obs`` and ``next_obs`` share them again, so a naive buffer stores each frame ``2k``
times. :class:`FrameStore` keeps every distinct frame once in a ring, lz4-compressed, and hands out
``(k,)`` int64 frame ids per observation; the replay buffer stores the ids and :meth:`FrameStore.decode`
turns a sampled batch of ids back into frames.

Measured on the 2-core dev VM (``benchmarks/atari_frames.py``: 50k transitions from 8 envs,
``AtariPreprocessing`` + ``FrameStackObservation(4)``, random policy): the store holds 0.98 (Pong) and
0.93 (Breakout) frames per transition, so dedup alone is 8.1x / 8.5x smaller than ``obs`` +
``next_obs``; lz4 shrinks the 7,056-byte frames to 264 / 406 bytes (26.7x / 17.4x), 163x / 122x in
all. Encoding ``obs`` + ``next_obs`` costs ~150 µs per vector step of 8 envs in isolation (~270 µs
inside the collection loop, whose env step takes 3.6-4.4 ms); decoding a 256-transition ``obs`` +
``next_obs`` batch (~1,200 distinct frames) 4.7-6.6 ms, vs 1.7-1.9 ms for the plain gather of a raw
store. Checkpointing 190k frames: ``state_dict`` 0.24 s, ``load_state_dict`` 0.9 s (it verifies
every payload).

lz4 runs once per frame in block mode: as fast as ``lz4.frame`` here (~2.3 µs to compress, ~2-4 µs to
decompress a frame) and 6% smaller, having no frame header; a content checksum would double the time.
Payloads are appended to blocks of ~4 MiB of raw frames, so a held frame costs its payload plus 16
bytes of index (a Python ``bytes`` object per frame would add ~40, i.e. 10-15%).
"""

from __future__ import annotations

import math
from typing import Any

import lz4.block
import numpy as np
import torch
from torch import Tensor

from lightning_rl.utils.checks import check_int, describe

__all__ = ["FrameStore"]

_FORMAT = "lightning_rl.FrameStore"
_VERSION = 1
# Raw frame bytes per payload block: large enough for few Python objects, small enough that the one
# block of already-evicted frames a ring may still hold costs little (~4 MiB raw, ~0.3 MiB compressed).
_BLOCK_RAW_BYTES = 4 << 20
# Frames decompressed at a time when a loaded state is verified (bounds the temporary memory).
_VERIFY_CHUNK = 4096


class FrameStore:
    """Ring of frames, each stored once (lz4-compressed or raw), addressed by global frame ids.

    Frame ids are monotone int64 counters; id ``i`` lives in ring slot ``i % capacity`` and is held
    while ``i >= next_id - capacity`` (:meth:`available`). Replay items whose ids were overwritten
    must be evicted before they are decoded.

    :meth:`encode` takes one vector step of stacked observations ``(E, k, *frame_shape)`` (dim 1 is the
    stack, the rest one frame: ``(H, W)``, ``(H, W, C)``, ...) and stores only frames not found in the
    same env's previously encoded stack, compared exactly (byte equality, no hashing): the stack
    shifted by one, the very same stack (``obs`` of step ``t + 1`` is ``next_obs`` of step ``t``) and,
    within a stack, a frame equal to its left neighbour (reset padding). Encoding ``obs`` and then
    ``next_obs`` of every vector step therefore stores ~1 frame per env and step, plus one per
    episode reset.

    Sizing: a buffer of ``N`` transitions references ~``N * (1 + 1 / episode_len)`` frames plus the
    ``k - 1`` older frames of its oldest stacks; give the ring some headroom, e.g.
    ``capacity = 1.1 * N + 4 * n_envs * (k + nstep)``, and still evict the items :meth:`available`
    rejects (long static screens or many short episodes write more).

    Not thread-safe: one store belongs to one process/thread (per-rank under DDP).

    Args:
        capacity: number of most recent frames held (the ring size); at least ``n_envs * k``.
        n_envs: number of envs ``E`` in the vector env (one comparison history per env).
        compress: lz4-compress each frame (``False``: raw frames in a preallocated
            ``(capacity, *frame_shape)`` uint8 tensor, same ids and results).
    """

    def __init__(self, capacity: int, n_envs: int, compress: bool = True) -> None:
        check_int("capacity", capacity, 1)
        check_int("n_envs", n_envs, 1)
        if not isinstance(compress, bool):
            raise ValueError(f"compress must be a bool (True or False), got {compress!r}")
        self.capacity = capacity
        self.n_envs = n_envs
        self.compress = compress
        self._frame_shape: tuple[int, ...] | None = None  # set by the first encode()
        self._stack = 0  # k; 0 until the first encode()
        self._frame_bytes = 0
        self._word: type[np.integer] = np.uint8  # widest integer dtype dividing a frame (fast compares)
        self._next_id = 0  # id of the next new frame == frames stored since construction
        self._encoded = 0  # frames given to encode() since construction
        # compress=True: frame payloads appended to blocks of `_block_frames` consecutive ids; block of
        # id i is `_blocks[(i // _block_frames) % len(_blocks)]`, its payload starts at `_offset[i % C]`.
        self._blocks: list[bytes | bytearray | None] = []
        self._block_frames = 0
        self._offset = np.zeros(0, dtype=np.int64)
        self._nbytes = np.zeros(0, dtype=np.int64)
        self._held_payload = 0  # payload bytes of the held frames
        # compress=False: (capacity, F) uint8 frames.
        self._raw: Tensor | None = None
        # Comparison history: each env's last encoded stack (frames and ids).
        self._last = np.zeros((0, 0, 0), dtype=np.uint8)  # (E, k, F)
        self._last_ids = np.zeros((0, 0), dtype=np.int64)  # (E, k)
        self._has_last = np.zeros(n_envs, dtype=bool)  # (E,)

    # ------------------------------------------------------------------ properties
    @property
    def frame_shape(self) -> tuple[int, ...] | None:
        """Shape of one frame (``obs.shape[2:]`` of the first :meth:`encode`), ``None`` before it."""
        return self._frame_shape

    @property
    def next_id(self) -> int:
        """Id the next new frame gets (= frames stored since construction)."""
        return self._next_id

    @property
    def oldest_id(self) -> int:
        """Oldest held frame id: ids in ``[oldest_id, next_id)`` can be decoded."""
        return max(0, self._next_id - self.capacity)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(capacity={self.capacity}, n_envs={self.n_envs}, "
            f"compress={self.compress}, frame_shape={self._frame_shape}, next_id={self._next_id})"
        )

    # ------------------------------------------------------------------ encode
    def encode(self, obs: Tensor) -> Tensor:
        """Store the new frames of one vector step and return the frame ids of every stack.

        Args:
            obs: ``(E, k, *frame_shape)`` uint8 CPU tensor; ``k`` and ``frame_shape`` are fixed by the
                first call.

        Returns:
            ``(E, k)`` int64 frame ids; ``decode(ids)`` equals ``obs``.
        """
        x = self._check_obs(obs)
        if self._frame_shape is None:
            self._allocate(tuple(obs.shape[2:]), x.shape[1])
        n_envs, k = x.shape[:2]
        words = x.view(self._word)
        last_words = self._last.view(self._word)
        if (
            self._has_last.all()
            and self._last_ids.min() >= self.oldest_id
            # newest frames first: they differ when encoding next_obs after obs, at 1/k of the cost
            and np.array_equal(words[:, -1], last_words[:, -1])
            and np.array_equal(words, last_words)
        ):  # the common obs of step t + 1 == next_obs of step t
            self._encoded += n_envs * k
            return torch.from_numpy(self._last_ids.copy())

        # A reused id must still be held after this call writes its new frames: if one is not, match
        # again without the ids that would be overwritten (only when ids are reused from far back,
        # e.g. a static screen in a small ring).
        lowest = self.oldest_id
        while True:
            ids, new = self._match(words, self._has_last[:, None] & (self._last_ids >= lowest))
            n_new = int(new.sum())
            if n_new == 0 or ids.min() >= self._next_id + n_new - self.capacity:
                break
            lowest = self._next_id + n_new - self.capacity
        env, pos = np.nonzero(new)
        self._write(x[env, pos])
        self._last[...] = x
        self._last_ids = ids
        self._has_last[:] = True
        self._encoded += n_envs * k
        return torch.from_numpy(ids.copy())

    def _match(self, words: np.ndarray, usable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Frame ids of the ``(E, k, F / word)`` stacks ``words`` reusing the ids of the previous stacks
        where ``usable`` (``(E, k)`` bool), and the ``(E, k)`` mask of frames that get new ids (from
        ``next_id``, in env-major, stack order so that ids follow time)."""
        n_envs, k = words.shape[:2]
        last_words, last_ids = self._last.view(self._word), self._last_ids
        ids = np.full((n_envs, k), -1, dtype=np.int64)
        if k > 1:  # stack shifted by one: frame j was frame j + 1 of the previous stack
            shifted = (words[:, :-1] == last_words[:, 1:]).all(-1) & usable[:, 1:]
            ids[:, :-1] = np.where(shifted, last_ids[:, 1:], -1)
        env, pos = np.nonzero((ids < 0) & usable)
        if env.size:  # same frame at the same position
            same = (words[env, pos] == last_words[env, pos]).all(-1)
            ids[env[same], pos[same]] = last_ids[env[same], pos[same]]
        repeat = np.zeros((n_envs, k), dtype=bool)
        env, pos = np.nonzero(ids[:, 1:] < 0)
        if env.size:  # equal to its left neighbour (reset padding, static screens)
            pos += 1
            repeat[env, pos] = (words[env, pos] == words[env, pos - 1]).all(-1)
        new = (ids < 0) & ~repeat
        ids[new] = np.arange(self._next_id, self._next_id + int(new.sum()), dtype=np.int64)
        if repeat.any():
            for j in range(1, k):  # left to right: a run of repeats takes the id of its first frame
                ids[:, j] = np.where(repeat[:, j], ids[:, j - 1], ids[:, j])
        return ids, new

    def _check_obs(self, obs: Tensor) -> np.ndarray:
        """Validates ``obs`` and returns it as a C-contiguous ``(E, k, F)`` uint8 array (may share memory)."""
        if not isinstance(obs, Tensor):
            raise ValueError(f"obs must be a torch.Tensor, got {type(obs).__name__}")
        if obs.dtype != torch.uint8 or obs.device.type != "cpu":
            raise ValueError(f"obs must be a uint8 CPU tensor, got dtype {obs.dtype} on {obs.device}")
        if obs.dim() < 3 or obs.shape[0] != self.n_envs or math.prod(obs.shape[1:]) == 0:
            raise ValueError(
                f"obs must have shape (n_envs={self.n_envs}, k >= 1, *frame_shape) with a non-empty "
                f"frame, got {tuple(obs.shape)}"
            )
        if self._frame_shape is not None and (
            obs.shape[1] != self._stack or tuple(obs.shape[2:]) != self._frame_shape
        ):
            raise ValueError(
                f"obs must have shape (n_envs, k={self._stack}, *frame_shape={self._frame_shape}) as in "
                f"the first encode(), got {tuple(obs.shape)}"
            )
        x = obs.detach().numpy()
        return np.ascontiguousarray(x.reshape(x.shape[0], x.shape[1], -1))

    def _allocate(self, frame_shape: tuple[int, ...], stack: int) -> None:
        if self.capacity < self.n_envs * stack:
            raise ValueError(
                f"capacity must be >= n_envs * k = {self.n_envs} * {stack} (one vector step of frames), "
                f"got {self.capacity}"
            )
        cap, n_bytes = self.capacity, math.prod(frame_shape)
        self._frame_shape, self._stack, self._frame_bytes = frame_shape, stack, n_bytes
        self._word = next(
            w for w in (np.int64, np.int32, np.int16, np.uint8) if n_bytes % np.dtype(w).itemsize == 0
        )
        if self.compress:
            self._block_frames = max(1, min(cap, _BLOCK_RAW_BYTES // n_bytes))
            # A window of `cap` consecutive ids touches at most ceil(cap / B) + 1 blocks.
            self._blocks = [None] * (-(-cap // self._block_frames) + 1)
            self._offset = np.zeros(cap, dtype=np.int64)
            self._nbytes = np.zeros(cap, dtype=np.int64)
        else:
            self._raw = torch.empty((cap, n_bytes), dtype=torch.uint8)
        self._last = np.zeros((self.n_envs, stack, n_bytes), dtype=np.uint8)
        self._last_ids = np.zeros((self.n_envs, stack), dtype=np.int64)

    def _write(self, frames: np.ndarray) -> None:
        """Append ``(n, F)`` new frames as ids ``next_id ..`` (``n <= capacity``)."""
        n, cap = frames.shape[0], self.capacity
        if n == 0:
            return
        if not self.compress:
            assert self._raw is not None
            slots = torch.arange(self._next_id, self._next_id + n) % cap
            self._raw.index_copy_(0, slots, torch.from_numpy(frames))  # 10x faster than index_put_
            self._next_id += n
            return
        per_block, blocks = self._block_frames, self._blocks
        for frame in frames:
            i = self._next_id
            slot, b = i % cap, i // per_block
            if i % per_block == 0:
                if b:  # seal the previous block: drop bytearray over-allocation
                    prev = (b - 1) % len(blocks)
                    blocks[prev] = bytes(blocks[prev])
                blocks[b % len(blocks)] = bytearray()
            block = blocks[b % len(blocks)]
            payload = lz4.block.compress(frame, store_size=False)
            if i >= cap:
                self._held_payload -= int(self._nbytes[slot])  # id i - cap leaves the ring
            self._offset[slot] = len(block)
            self._nbytes[slot] = len(payload)
            block += payload
            self._held_payload += len(payload)
            self._next_id = i + 1

    # ------------------------------------------------------------------ decode
    def decode(self, ids: Tensor) -> Tensor:
        """Frames of ``ids``; each distinct id is decompressed once.

        Args:
            ids: int64 CPU tensor of held frame ids, typically ``(..., k)`` from :meth:`encode`. Decode
                ``obs`` and ``next_obs`` ids in one call (e.g. ``torch.stack``) to share their frames.

        Returns:
            ``(*ids.shape, *frame_shape)`` uint8 tensor (a fresh copy).

        Raises:
            ValueError: if any id is not held (see :meth:`available`).
        """
        flat = self._check_ids(ids)
        if self._frame_shape is None:
            raise ValueError("decode() called before the first encode(): the store holds no frames")
        if flat.size and (flat.min() < self.oldest_id or flat.max() >= self._next_id):
            bad = flat[(flat < self.oldest_id) | (flat >= self._next_id)]
            raise ValueError(
                f"ids {bad[:8].tolist()} are not held (held ids: [{self.oldest_id}, {self._next_id})); "
                "evict the replay items whose available() is False"
            )
        if not self.compress:
            assert self._raw is not None
            # index_select, not advanced indexing: 10x faster for rows of uint8
            frames = self._raw.index_select(0, torch.from_numpy(flat % self.capacity))
        else:
            unique, inverse = np.unique(flat, return_inverse=True)
            frames = self._decompress(unique).index_select(0, torch.from_numpy(inverse.reshape(-1)))
        return frames.view(*ids.shape, *self._frame_shape)

    def _decompress(self, ids: np.ndarray) -> Tensor:
        """``(U, F)`` uint8 frames of the held ``ids`` (int64 array)."""
        n_bytes, blocks = self._frame_bytes, self._blocks
        slots = ids % self.capacity
        starts = self._offset[slots].tolist()
        ends = (self._offset[slots] + self._nbytes[slots]).tolist()
        block_idx = ((ids // self._block_frames) % len(blocks)).tolist()
        parts = []
        for i, b, start, end in zip(ids.tolist(), block_idx, starts, ends, strict=True):
            try:
                part = lz4.block.decompress(memoryview(blocks[b])[start:end], uncompressed_size=n_bytes)
            except lz4.block.LZ4BlockError as err:
                raise ValueError(f"frame {i}: lz4 payload is corrupt: {err}") from err
            if len(part) != n_bytes:
                raise ValueError(f"frame {i}: lz4 payload holds {len(part)} bytes, expected {n_bytes}")
            parts.append(part)
        if not parts:
            return torch.empty((0, n_bytes), dtype=torch.uint8)
        return torch.frombuffer(bytearray().join(parts), dtype=torch.uint8).view(len(parts), n_bytes)

    def _check_ids(self, ids: Tensor) -> np.ndarray:
        if not isinstance(ids, Tensor) or ids.dtype != torch.int64 or ids.device.type != "cpu":
            raise ValueError(f"ids must be an int64 CPU tensor, got {describe(ids)}")
        return ids.detach().reshape(-1).numpy()

    # ------------------------------------------------------------------ availability and history
    def available(self, ids: Tensor) -> Tensor:
        """Whether every frame of each item is still held.

        Args:
            ids: ``(..., k)`` int64 CPU frame ids.

        Returns:
            ``(...)`` bool: all ``k`` ids lie in ``[oldest_id, next_id)``.
        """
        self._check_ids(ids)
        if ids.dim() == 0:
            raise ValueError("ids must have a trailing stack dim (..., k), got a 0-d tensor")
        return ((ids >= self.oldest_id) & (ids < self._next_id)).all(-1)

    def reset(self, env_mask: Tensor | None = None) -> None:
        """Forget the comparison history of all envs, or of those where the ``(E,)`` bool ``env_mask`` is
        True (their next stack is stored without de-duplication against the previous one)."""
        if env_mask is None:
            self._has_last[:] = False
            return
        if (
            not isinstance(env_mask, Tensor)
            or env_mask.dtype != torch.bool
            or tuple(env_mask.shape) != (self.n_envs,)
        ):
            raise ValueError(
                f"env_mask must be a bool tensor of shape ({self.n_envs},), got {describe(env_mask)}"
            )
        self._has_last[env_mask.cpu().numpy()] = False

    # ------------------------------------------------------------------ monitoring
    def stats(self) -> dict[str, float]:
        """Monitoring values.

        ``frames_encoded``: frames given to :meth:`encode`; ``frames_stored``: new frames written (both
        since construction); ``frames_held``: frames in the ring; ``raw_bytes``: their uncompressed size;
        ``stored_bytes``: their stored size (lz4 payloads, or ``raw_bytes``); ``memory_bytes``: all
        allocated storage (blocks incl. not yet freed evicted frames, index, history, or the raw ring);
        ``compression_ratio`` = raw / stored bytes; ``dedup_ratio`` = encoded / stored frames.
        """
        held = min(self._next_id, self.capacity)
        raw_bytes = held * self._frame_bytes
        if self.compress:
            stored = self._held_payload
            memory = sum(len(b) for b in self._blocks if b is not None)
            memory += self._offset.nbytes + self._nbytes.nbytes
        else:
            stored = raw_bytes
            memory = 0 if self._raw is None else self._raw.numel()
        memory += self._last.nbytes + self._last_ids.nbytes
        return {
            "frames_encoded": float(self._encoded),
            "frames_stored": float(self._next_id),
            "frames_held": float(held),
            "raw_bytes": float(raw_bytes),
            "stored_bytes": float(stored),
            "memory_bytes": float(memory),
            "compression_ratio": raw_bytes / stored if stored else 1.0,
            "dedup_ratio": self._encoded / self._next_id if self._next_id else 1.0,
        }

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict[str, Any]:
        """Held frames, comparison history and counters as tensors and Python primitives (loadable with
        ``torch.load(weights_only=True)``); tensors never share memory with the store.

        Frames are in id order from :attr:`oldest_id`: ``payload`` (all lz4 payloads concatenated, 1-D
        uint8) with ``nbytes`` (``(held,)`` int64 payload sizes) when compressed, else ``frames``
        (``(held, *frame_shape)`` uint8).
        """
        held_ids = np.arange(self.oldest_id, self._next_id, dtype=np.int64)
        payload = nbytes = frames = last = None
        if self._frame_shape is not None:
            last = torch.from_numpy(self._last.reshape(self.n_envs, self._stack, *self._frame_shape).copy())
            if self.compress:
                nbytes = torch.from_numpy(self._nbytes[held_ids % self.capacity])
                payload = self._payload(held_ids)
            else:
                assert self._raw is not None
                slots = torch.from_numpy(held_ids % self.capacity)
                frames = self._raw.index_select(0, slots).view(-1, *self._frame_shape)
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "capacity": self.capacity,
            "n_envs": self.n_envs,
            "compress": self.compress,
            "frame_shape": None if self._frame_shape is None else list(self._frame_shape),
            "stack": self._stack,
            "next_id": self._next_id,
            "frames_encoded": self._encoded,
            "payload": payload,
            "nbytes": nbytes,
            "frames": frames,
            "last": last,
            "last_ids": torch.from_numpy(self._last_ids.copy()),
            "has_last": torch.from_numpy(self._has_last.copy()),
        }

    def _payload(self, held_ids: np.ndarray) -> Tensor:
        """1-D uint8 payloads of the consecutive ``held_ids`` concatenated: one slice per block, the
        frames of a block being contiguous and in id order."""
        if held_ids.size == 0:
            return torch.empty(0, dtype=torch.uint8)
        per_block, blocks = self._block_frames, self._blocks
        first, last = int(held_ids[0]) // per_block, int(held_ids[-1]) // per_block
        start = int(self._offset[held_ids[0] % self.capacity])
        parts = []
        for b in range(first, last + 1):
            block = blocks[b % len(blocks)]
            parts.append(memoryview(block)[start if b == first else 0 :])
        return torch.frombuffer(bytearray().join(parts), dtype=torch.uint8)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output (later encodes return the same ids as the saved store would).

        The store must have been built with the same ``capacity``, ``n_envs`` and ``compress``. Every
        held payload is decompressed once to verify it. Raises ``ValueError`` naming the offending field
        for corrupt or incompatible state; the store is unchanged in that case.
        """
        if not isinstance(state, dict):
            raise ValueError(f"frame store state must be a dict, got {type(state).__name__}")
        if state.get("format") != _FORMAT:
            raise ValueError(f"frame store state: 'format' must be {_FORMAT!r}, got {state.get('format')!r}")
        if state.get("version") != _VERSION:
            raise ValueError(
                f"frame store state: unsupported 'version' {state.get('version')!r} (supported: {_VERSION})"
            )
        for name, mine in (
            ("capacity", self.capacity),
            ("n_envs", self.n_envs),
            ("compress", self.compress),
        ):
            theirs = state.get(name)
            if type(theirs) is not type(mine) or theirs != mine:
                raise ValueError(f"frame store state: {name!r} is {theirs!r} but this store has {mine!r}")
        next_id = _state_int(state, "next_id", 0)
        encoded = _state_int(state, "frames_encoded", next_id)
        frame_shape = state.get("frame_shape")
        # Frame data of the other mode, or of any mode before the first encode, must be absent.
        absent = ["frames"] if self.compress else ["payload", "nbytes"]
        if frame_shape is None:
            absent = ["payload", "nbytes", "frames", "last"]
        for name in absent:
            if state.get(name) is not None:
                raise ValueError(
                    f"frame store state: {name!r} must be None when 'compress' is {self.compress} and "
                    f"'frame_shape' is {frame_shape!r}, got {describe(state.get(name))}"
                )
        new = FrameStore(self.capacity, self.n_envs, self.compress)
        if frame_shape is None:
            if next_id or encoded or state.get("stack") != 0:
                raise ValueError(
                    "frame store state: 'frame_shape' is None (nothing encoded) but 'next_id', "
                    "'frames_encoded' or 'stack' is not 0"
                )
            _state_tensor(state, "has_last", torch.bool, (self.n_envs,))
            if bool(state["has_last"].any()):
                raise ValueError("frame store state: 'has_last' must be all False when nothing was encoded")
            self.__dict__.update(new.__dict__)
            return
        if not (
            isinstance(frame_shape, list)
            and frame_shape
            and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in frame_shape)
        ):
            raise ValueError(
                f"frame store state: 'frame_shape' must be a non-empty list of ints > 0, got {frame_shape!r}"
            )
        stack = _state_int(state, "stack", 1)
        if encoded % (self.n_envs * stack):
            raise ValueError(
                f"frame store state: 'frames_encoded' {encoded} must be a multiple of n_envs * stack = "
                f"{self.n_envs * stack}"
            )
        if self.capacity < self.n_envs * stack:
            raise ValueError(
                f"frame store state: 'stack' {stack} needs capacity >= n_envs * stack = {self.n_envs * stack}"
            )
        new._allocate(tuple(frame_shape), stack)
        new._next_id, new._encoded = next_id, encoded
        held_ids = np.arange(new.oldest_id, next_id, dtype=np.int64)
        if self.compress:
            new._load_payload(state, held_ids)
        else:
            frames = _state_tensor(state, "frames", torch.uint8, (held_ids.size, *frame_shape))
            assert new._raw is not None
            slots = torch.from_numpy(held_ids % self.capacity)
            new._raw.index_copy_(0, slots, frames.reshape(held_ids.size, -1))

        last = _state_tensor(state, "last", torch.uint8, (self.n_envs, stack, *frame_shape))
        last_ids = _state_tensor(state, "last_ids", torch.int64, (self.n_envs, stack))
        has_last = _state_tensor(state, "has_last", torch.bool, (self.n_envs,))
        new._last[...] = last.reshape(self.n_envs, stack, -1).numpy()
        new._last_ids = last_ids.numpy().copy()
        new._has_last = has_last.numpy().copy()
        # De-duplication trusts that `last` holds the frames of `last_ids`: check it.
        kept_ids = last_ids[has_last]
        if kept_ids.numel():
            if not bool(new.available(kept_ids).all()):
                raise ValueError(
                    f"frame store state: 'last_ids' of envs with 'has_last' must lie in "
                    f"[{new.oldest_id}, {next_id})"
                )
            if not torch.equal(new.decode(kept_ids), last[has_last]):
                raise ValueError("frame store state: 'last' does not match the stored frames of 'last_ids'")
        self.__dict__.update(new.__dict__)

    def _load_payload(self, state: dict[str, Any], held_ids: np.ndarray) -> None:
        """Fills the blocks of a freshly allocated store from ``state['payload']`` / ``state['nbytes']``."""
        n_bytes, cap = self._frame_bytes, self.capacity
        nbytes = _state_tensor(state, "nbytes", torch.int64, (held_ids.size,)).numpy()
        max_payload = n_bytes + n_bytes // 255 + 16  # LZ4_COMPRESSBOUND
        if nbytes.size and (nbytes.min() < 1 or nbytes.max() > max_payload):
            raise ValueError(f"frame store state: 'nbytes' values must be in [1, {max_payload}]")
        payload = state.get("payload")
        if not (isinstance(payload, Tensor) and payload.dtype == torch.uint8 and payload.dim() == 1):
            raise ValueError(
                f"frame store state: 'payload' must be a 1-D uint8 tensor, got {describe(payload)}"
            )
        if payload.numel() != int(nbytes.sum()):
            raise ValueError(
                f"frame store state: 'payload' holds {payload.numel()} bytes but 'nbytes' sums to "
                f"{int(nbytes.sum())}"
            )
        if held_ids.size == 0:
            return
        data = payload.contiguous().numpy()
        ends = np.cumsum(nbytes)
        starts = ends - nbytes
        block_of = held_ids // self._block_frames
        first = np.flatnonzero(np.r_[True, block_of[1:] != block_of[:-1]])  # first frame of each block
        last = np.r_[first[1:], held_ids.size] - 1
        for lo, hi in zip(first.tolist(), last.tolist(), strict=True):
            base = int(starts[lo])
            self._blocks[int(block_of[lo]) % len(self._blocks)] = data[base : int(ends[hi])].tobytes()
            self._offset[held_ids[lo : hi + 1] % cap] = starts[lo : hi + 1] - base
        self._blocks[int(block_of[-1]) % len(self._blocks)] = bytearray(
            self._blocks[int(block_of[-1]) % len(self._blocks)]
        )  # the newest block may still be appended to
        self._nbytes[held_ids % cap] = nbytes
        self._held_payload = int(nbytes.sum())
        for i in range(0, held_ids.size, _VERIFY_CHUNK):
            try:
                self._decompress(held_ids[i : i + _VERIFY_CHUNK])
            except ValueError as err:
                raise ValueError(f"frame store state: 'payload': {err}") from err


def _state_int(state: dict[str, Any], name: str, lo: int) -> int:
    return check_int(f"frame store state: {name!r}", state.get(name), lo)


def _state_tensor(state: dict[str, Any], name: str, dtype: torch.dtype, shape: tuple[int, ...]) -> Tensor:
    value = state.get(name)
    if not isinstance(value, Tensor) or value.dtype != dtype or tuple(value.shape) != tuple(shape):
        raise ValueError(
            f"frame store state: {name!r} must be a {dtype} tensor of shape {tuple(shape)}, "
            f"got {describe(value)}"
        )
    return value
