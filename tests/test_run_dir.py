"""Concurrent runs in one default_root_dir get distinct run directories (issue 11, item 1)."""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_utils import REPO, short_run_args

from lightning_rl.run_dir import RunDirError, claim_version


def test_processes_claiming_at_once_get_distinct_versions(tmp_path):
    (tmp_path / "version_3").mkdir()  # an earlier run: never reused, numbering goes on after it
    # spawned, not forked: a fork of the suite's process (torch, gloo and Ray threads) can hang. Four
    # workers race for sixteen claims (each spawned worker spends seconds importing Lightning).
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        versions = pool.map(claim_version, [str(tmp_path)] * 16)
    assert sorted(versions) == list(range(4, 20))
    assert all((tmp_path / f"version_{v}").is_dir() for v in versions)


def test_an_existing_version_is_never_reused(tmp_path):
    assert claim_version(tmp_path) == 0
    assert claim_version(tmp_path) == 1
    os.rmdir(tmp_path / "version_1")
    assert claim_version(tmp_path) == 1  # only a directory that is gone is free again


def test_other_ranks_do_not_claim(tmp_path, monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert claim_version(tmp_path) is None and not tmp_path.joinpath("version_0").exists()


def test_an_unusable_root_is_one_line_naming_the_path(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(
        RunDirError, match=f"cannot create a run directory under {blocker}/csv: Not a directory"
    ):
        claim_version(blocker / "csv")

    def full(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(os, "mkdir", full)
    with pytest.raises(RunDirError, match=r"No space left on device \(the disk is full\)"):
        claim_version(tmp_path / "runs")


def test_two_runs_started_together_write_into_their_own_directories(tmp_path):
    def start(seed: int) -> subprocess.Popen:
        args = short_run_args(tmp_path, f"--seed_everything={seed}", max_steps=40)
        return subprocess.Popen(
            [sys.executable, "-m", "lightning_rl", *args], cwd=REPO, stdout=subprocess.PIPE, text=True
        )

    runs = [start(0), start(1)]
    outputs = [run.communicate(timeout=300)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    written = [
        Path(line.split("written to ", 1)[1])
        for out in outputs
        for line in out.splitlines()
        if "written to " in line
    ]
    written = [path for path in written if path.name == "result.json"]
    dirs = {path.parent for path in written}
    assert len(dirs) == 2, written
    seeds = {
        line
        for d in dirs
        for line in (d / "config.yaml").read_text().splitlines()
        if "seed_everything" in line
    }
    assert seeds == {"seed_everything: 0", "seed_everything: 1"}  # each directory holds its own run's config
    for directory in dirs:
        for name in ("metrics.csv", "config.yaml", "result.json", "checkpoints/last.ckpt"):
            assert (directory / name).is_file(), (directory, name)
        result = json.loads((directory / "result.json").read_text())
        assert result["ckpt_path"].startswith(str(directory))
