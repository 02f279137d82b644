"""Framework-independent helpers (``lightning_rl.utils``): compression and crash-safe IO."""

from lightning_rl.utils.compression import (
    lz4_compress_chunks,
    lz4_compress_tensor,
    lz4_decompress_chunks,
    lz4_decompress_tensor,
)
from lightning_rl.utils.io import atomic_save

__all__ = [
    "atomic_save",
    "lz4_compress_chunks",
    "lz4_compress_tensor",
    "lz4_decompress_chunks",
    "lz4_decompress_tensor",
]
