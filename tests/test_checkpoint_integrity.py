"""Damaged checkpoints, replay and dataset directories are one `error:` line naming the file; interrupted
saves leave nothing behind at the next start; saved files follow the umask."""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import time
import zipfile
from pathlib import Path

import pytest
import torch
from cli_utils import CONFIG, short_run_args

from lightning_rl.checkpoint_io import AtomicCheckpointIO
from lightning_rl.cli import RLCLI, main
from lightning_rl.data.offline import TransitionDataset, write_dataset
from lightning_rl.utils.integrity import CheckpointError, verify_torch_file
from lightning_rl.utils.io import atomic_directory, atomic_save, remove_stale_temp_files

OLD = time.time() - 3600  # an mtime before this test process started


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """The run directory of a short DQN run (last.ckpt with the replay, best.ckpt without)."""
    root = tmp_path_factory.mktemp("trained")
    cli = RLCLI(args=short_run_args(root, max_steps=60))
    return Path(cli.trainer.checkpoint_callback.last_model_path).parent.parent


def _member_span(path: Path, suffix: str) -> tuple[int, int]:
    """Byte range of the zip member whose name ends with ``suffix`` (the largest such member)."""
    with zipfile.ZipFile(path) as archive:
        member = max(
            (m for m in archive.infolist() if m.filename.endswith(suffix)), key=lambda m: m.file_size
        )
        with open(path, "rb") as f:
            f.seek(member.header_offset + 26)
            name_len, extra_len = int.from_bytes(f.read(2), "little"), int.from_bytes(f.read(2), "little")
        start = member.header_offset + 30 + name_len + extra_len
        return start, member.file_size


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _flip_tensor(path: Path) -> None:
    start, size = _member_span(path, max_data_name(path))
    _flip(path, start + size // 2)


def max_data_name(path: Path) -> str:
    with zipfile.ZipFile(path) as archive:
        data = [m for m in archive.infolist() if "/data/" in m.filename]
        return max(data, key=lambda m: m.file_size).filename.partition("/")[2]


def _flip_pickle(path: Path) -> None:
    start, size = _member_span(path, "data.pkl")
    _flip(path, start + size // 2)


DAMAGES = {
    "tensor_byte": (_flip_tensor, r"is damaged: checksum mismatch in data/\d+ \(the file was changed"),
    "pickle_byte": (_flip_pickle, r"is damaged: checksum mismatch in data.pkl"),
    "truncated": (lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), "truncated zip"),
    "empty": (lambda p: p.write_bytes(b""), "is empty"),
    "text": (lambda p: p.write_text("model: DQN\n"), r"is not a checkpoint \(a text file\?\)"),
    "missing": (lambda p: p.unlink(), "does not exist"),
}


@pytest.fixture(params=sorted(DAMAGES))
def damaged(request, trained, tmp_path) -> tuple[Path, str]:
    path = tmp_path / "last.ckpt"
    shutil.copy(trained / "checkpoints" / "last.ckpt", path)
    damage, match = DAMAGES[request.param]
    damage(path)
    return path, match


def _one_line_error(capsys, args: list[str]) -> str:
    capsys.readouterr()  # what earlier runs printed
    with pytest.MonkeyPatch.context() as patch, pytest.raises(SystemExit) as exit_info:
        patch.setattr("sys.argv", ["lightning-rl"])  # else LightningCLI warns about pytest's argv
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("subcommand", ["fit", "validate", "collect"])
def test_a_damaged_checkpoint_is_one_line_naming_the_file(damaged, subcommand, tmp_path, capsys):
    path, match = damaged
    args = ["--config", CONFIG, f"--trainer.default_root_dir={tmp_path / 'runs'}", f"--ckpt_path={path}"]
    if subcommand == "collect":
        args += ["--n_steps=50", f"--out={tmp_path / 'ds'}"]
    err = _one_line_error(capsys, [subcommand, *args])
    assert str(path) in err
    assert re.search(match, err), err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "ds").exists()


def test_lightnings_own_load_path_verifies_the_checkpoint(damaged, tmp_path):
    path, match = damaged
    with pytest.raises(CheckpointError, match=match):
        AtomicCheckpointIO().load_checkpoint(path)
    cli = RLCLI(args=short_run_args(tmp_path, max_steps=80, run=False), run=False)
    with pytest.raises(CheckpointError, match=match):
        cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=str(path))


def test_a_sound_checkpoint_still_loads_with_plain_torch_load(trained):
    last = trained / "checkpoints" / "last.ckpt"
    verify_torch_file(last)
    assert torch.load(last, weights_only=True)["state_dict"]


def test_a_damaged_replay_directory_file_is_one_line(tmp_path, capsys):
    first = RLCLI(
        args=short_run_args(
            tmp_path / "runs",
            "--data.init_args.storage=memmap",
            f"--data.init_args.memmap_dir={tmp_path / 'mm'}",
            max_steps=60,
        )
    )
    last = first.trainer.checkpoint_callback.last_model_path
    buffer_dir = Path(torch.load(last, weights_only=True)["OffPolicyDataModule"]["buffer_dir"])
    rows = buffer_dir / "rank0" / "buffer" / "rows.bin"
    _flip(rows, rows.stat().st_size // 2)
    args = short_run_args(
        tmp_path / "runs",
        "--data.init_args.storage=memmap",
        f"--data.init_args.memmap_dir={tmp_path / 'mm'}",
        f"--ckpt_path={last}",
        max_steps=80,
    )
    err = _one_line_error(capsys, args)
    assert f"replay directory {rows.parent} is damaged: checksum mismatch in rows.bin" in err


def test_a_damaged_dataset_file_is_named(tmp_path):
    from test_offline import cartpole_spec, random_transitions

    path = write_dataset(tmp_path / "ds", random_transitions(50), {"env_spec": cartpole_spec()})
    TransitionDataset(path)  # sound
    obs = path / "transitions" / "obs.memmap"
    _flip(obs, 17)
    with pytest.raises(
        CheckpointError, match=r"dataset .*ds is damaged: checksum mismatch in transitions/obs"
    ):
        TransitionDataset(path)


def test_temp_files_of_an_interrupted_save_are_removed_at_the_next_start(trained, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    ckpt_dir = run / "checkpoints"
    stale_file = ckpt_dir / ".last.ckpt.k3j2h1g0.tmp"
    stale_file.write_bytes(b"PK half a checkpoint")
    stale_dir = run / "replay" / "iter60" / "rank0" / ".buffer.a1b2c3d4.tmp"
    stale_dir.mkdir(parents=True)
    (stale_dir / "rows.bin").write_bytes(b"\0" * 10)
    fresh = ckpt_dir / ".best.ckpt.zzzzzzzz.tmp"  # written after this process started: may be live
    fresh.write_bytes(b"")
    locked = ckpt_dir / ".last.ckpt.lockedxx.tmp"  # an old file whose writer still holds its lock
    locked.write_bytes(b"")
    for path in (stale_file, stale_dir, locked):
        os.utime(path, (OLD, OLD))
    with open(locked, "rb") as holder:
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX)
        RLCLI(args=short_run_args(tmp_path / "runs2", f"--ckpt_path={ckpt_dir / 'last.ckpt'}", max_steps=70))
    assert not stale_file.exists() and not stale_dir.exists()
    assert fresh.exists() and locked.exists()
    assert f"removed {stale_file}: left by an interrupted save" in capsys.readouterr().out
    assert remove_stale_temp_files(run) == [locked]  # unlocked now


def test_a_save_into_a_directory_first_removes_its_stale_temp_files(tmp_path):
    stale = tmp_path / ".last.ckpt.abcdefgh.tmp"
    stale.write_bytes(b"")
    os.utime(stale, (OLD, OLD))
    AtomicCheckpointIO().save_checkpoint({"step": 1}, tmp_path / "last.ckpt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


@pytest.mark.parametrize(("umask", "file_mode", "dir_mode"), [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750)])
def test_saved_files_follow_the_umask(tmp_path, umask, file_mode, dir_mode):
    old = os.umask(umask)
    try:
        atomic_save({"a": torch.ones(2)}, tmp_path / "last.ckpt")
        with atomic_directory(tmp_path / "replay") as tmp:
            (tmp / "rows.bin").write_bytes(b"\0")
    finally:
        os.umask(old)
    assert (tmp_path / "last.ckpt").stat().st_mode & 0o777 == file_mode
    assert (tmp_path / "replay").stat().st_mode & 0o777 == dir_mode
    assert (tmp_path / "replay" / "checksums.json").stat().st_mode & 0o777 == file_mode
