"""The package list in setup.cfg must name every package in the tree (callbacks/ and datamodules/ are
mapped under lightning_rl), or a regular install would silently miss modules."""

from __future__ import annotations

import configparser

from cli_utils import REPO

MAPPED = {"callbacks": "lightning_rl.callbacks", "datamodules": "lightning_rl.datamodules"}


def test_every_package_directory_is_listed_in_setup_cfg():
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    listed = set(config["options"]["packages"].split())
    found = set()
    for top in ("lightning_rl", "callbacks", "datamodules", "app_zoo"):
        for init in (REPO / top).rglob("__init__.py"):
            parts = list(init.parent.relative_to(REPO).parts)
            parts[0] = MAPPED.get(parts[0], parts[0])
            found.add(".".join(parts))
    assert listed == found


def test_mapped_packages_import_under_lightning_rl():
    import lightning_rl.callbacks
    import lightning_rl.datamodules

    assert lightning_rl.callbacks.Evaluator.__module__ == "lightning_rl.callbacks.evaluator"
    assert lightning_rl.datamodules.OffPolicyDataModule.__module__ == "lightning_rl.datamodules.off_policy"
