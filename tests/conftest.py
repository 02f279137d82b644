"""Shared fixtures: one torch thread (fastest for small nets on 2 cores), no wandb network access."""

from __future__ import annotations

import os

import pytest
import torch

# wandb is exercised offline in one CLI test; elsewhere it stays disabled (no files, no service process)
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture(autouse=True)
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
