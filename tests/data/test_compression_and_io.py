"""lz4 tensor codec and atomic_save (lightning_rl.utils)."""

from __future__ import annotations

import os

import pytest
import torch

from lightning_rl.utils import (
    atomic_save,
    lz4_compress_chunks,
    lz4_compress_tensor,
    lz4_decompress_chunks,
    lz4_decompress_tensor,
)


@pytest.mark.parametrize(
    "tensor",
    [
        torch.arange(24, dtype=torch.float32).reshape(2, 3, 4),
        torch.tensor([True, False, True]),
        torch.arange(5, dtype=torch.bfloat16),
        torch.arange(6, dtype=torch.int64).reshape(3, 2)[:, 1],  # non-contiguous
        torch.tensor(3.5),  # 0-dim
        torch.zeros(0, 4, dtype=torch.uint8),
    ],
)
def test_lz4_roundtrip_is_exact(tensor):
    data = lz4_compress_tensor(tensor)
    assert data.dtype == torch.uint8 and data.dim() == 1
    out = lz4_decompress_tensor(data, tensor.shape, tensor.dtype)
    assert out.dtype == tensor.dtype and out.shape == tensor.shape
    assert torch.equal(out, tensor)


def test_lz4_shrinks_compressible_images_and_chunks_roundtrip():
    img = torch.zeros(100, 84, 84, dtype=torch.uint8)
    img[:, 40:44] = torch.randint(0, 255, (100, 4, 84), dtype=torch.uint8)
    chunks, per_chunk = lz4_compress_chunks(img, chunk_bytes=84 * 84 * 16)
    assert per_chunk == 16 and len(chunks) == 7
    assert sum(c.numel() for c in chunks) < img.numel() / 5
    assert torch.equal(lz4_decompress_chunks(chunks, per_chunk, img.shape, img.dtype), img)


def test_lz4_rejects_corrupt_or_mismatched_payloads():
    t = torch.arange(1000, dtype=torch.int32)
    data = lz4_compress_tensor(t)
    with pytest.raises(ValueError, match="expected"):
        lz4_decompress_tensor(data, (999,), torch.int32)
    bad = data.clone()
    bad[len(bad) // 2 :] ^= 0xFF
    with pytest.raises(ValueError, match="corrupt"):
        lz4_decompress_tensor(bad, t.shape, t.dtype)
    with pytest.raises(ValueError, match="uint8"):
        lz4_decompress_tensor(data.float(), t.shape, t.dtype)


def test_atomic_save_writes_and_replaces(tmp_path):
    path = tmp_path / "ckpt.pt"
    atomic_save({"a": torch.ones(3)}, path)
    atomic_save({"a": torch.zeros(3)}, str(path))
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.zeros(3))
    assert os.listdir(tmp_path) == ["ckpt.pt"]


def test_atomic_save_failure_keeps_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "ckpt.pt"
    atomic_save({"step": 1}, path)
    before = path.read_bytes()

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom mid-save")

    with pytest.raises(RuntimeError, match="boom"):
        atomic_save({"big": torch.zeros(1000), "bad": Unpicklable()}, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["ckpt.pt"]
    assert torch.load(path, weights_only=True) == {"step": 1}


def test_atomic_checkpoint_io_keeps_the_old_checkpoint_when_a_save_fails(tmp_path):
    from lightning_rl.checkpoint_io import AtomicCheckpointIO

    io = AtomicCheckpointIO()
    path = tmp_path / "nested" / "last.ckpt"
    io.save_checkpoint({"step": 1}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        io.save_checkpoint({"step": 2, "bad": Unpicklable()}, path)
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]
    with pytest.raises(TypeError, match="storage_options"):
        io.save_checkpoint({"step": 3}, path, storage_options={"s3": 1})
