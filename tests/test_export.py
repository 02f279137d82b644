"""``lightning-rl export``: for every policy family the exported model (onnxruntime for ONNX,
``torch.jit.load`` for TorchScript) returns the checkpoint's own deterministic actions on 1,000
observations; recurrent state as an explicit input and output; observation normalization folded in."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_utils import REPO

from lightning_rl.cli import RLCLI, main
from lightning_rl.datamodules import OffPolicyDataModule
from lightning_rl.envs import PettingZooEnv
from lightning_rl.export import export_policy, load_policy
from lightning_rl.policies import DQN, PPO, QMIX, R2D2, SAC

ort = pytest.importorskip("onnxruntime", reason="pip install 'lightning-rl[export]'")
N_OBS = 1_000


def spec_of(**data: object) -> dict:
    return OffPolicyDataModule(**data).env_spec


def save_checkpoint(policy: torch.nn.Module, path: Path) -> Path:
    """A checkpoint as the CLI writes one, as far as export reads it: the class path, the hyperparameters
    and the weights."""
    cls = type(policy)
    hparams = {"_class_path": f"{cls.__module__}.{cls.__qualname__}", **policy.hparams}
    torch.save({"hyper_parameters": hparams, "state_dict": policy.state_dict(), "train_iter": 0}, path)
    return path


def observations(spec: dict, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    obs = torch.randn(N_OBS, *spec["obs_shape"], generator=generator) * 2
    if spec.get("multi_agent"):  # keep the packed action masks of a multi-agent observation legal
        obs = obs.abs() + 0.5
    return obs


def run_exported(path: Path, fmt: str, *inputs: torch.Tensor) -> list[np.ndarray]:
    if fmt == "onnx":
        session = ort.InferenceSession(str(path))
        names = [i.name for i in session.get_inputs()]
        return session.run(None, {n: t.numpy() for n, t in zip(names, inputs, strict=True)})
    out = torch.jit.load(str(path))(*inputs)
    return [t.numpy() for t in (out if isinstance(out, tuple) else (out,))]


def assert_same(exported: np.ndarray, expected: torch.Tensor) -> None:
    if expected.dtype.is_floating_point:
        np.testing.assert_allclose(exported, expected.numpy(), rtol=1e-5, atol=1e-5)
    else:
        np.testing.assert_array_equal(exported, expected.numpy())


CARTPOLE, PENDULUM = {"env_id": "CartPole-v1"}, {"env_id": "Pendulum-v1"}
FEED_FORWARD = {
    "DQN": (lambda spec: DQN(env_spec=spec, dueling=True), CARTPOLE),
    "PPO discrete": (lambda spec: PPO(env_spec=spec), CARTPOLE),
    "PPO continuous": (lambda spec: PPO(env_spec=spec, squash=True), PENDULUM),
    "SAC": (lambda spec: SAC(env_spec=spec), PENDULUM),
}


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("family", list(FEED_FORWARD))
def test_feed_forward_exports_act_as_the_checkpoint_does(tmp_path, family, fmt):
    build, data = FEED_FORWARD[family]
    spec = spec_of(**data)
    ckpt = save_checkpoint(build(spec).eval(), tmp_path / "policy.ckpt")
    model, described = export_policy(ckpt, fmt)
    policy, _, _ = load_policy(ckpt)
    obs = observations(spec)
    with torch.no_grad():
        expected = policy.act(obs, mode="eval")
    (exported,) = run_exported(model, fmt, obs)
    assert_same(exported, expected)
    info = json.loads(described.read_text())
    assert info["inputs"]["obs"] == {"shape": [-1, *spec["obs_shape"]], "dtype": "float32"}
    assert info["outputs"]["action"]["dtype"] == ("int64" if spec["action_type"] == "discrete" else "float32")
    assert not info["obs_normalization"]


def recurrent_cases() -> dict:
    cases = {"R2D2": (lambda spec: R2D2(env_spec=spec), CARTPOLE)}
    if __import__("importlib").util.find_spec("mpe2") is not None:
        team = {
            "env_id": None,
            "env_fn": PettingZooEnv,
            "env_kwargs": {"env": "mpe2.simple_spread_v3", "N": 3},
        }
        cases["QMIX"] = (lambda spec: QMIX(env_spec=spec, hidden_sizes=[32], lstm_size=32), team)
    return cases


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("family", list(recurrent_cases()))
def test_recurrent_policies_take_and_return_their_state(tmp_path, family, fmt):
    build, data = recurrent_cases()[family]
    spec = spec_of(**data)
    ckpt = save_checkpoint(build(spec).eval(), tmp_path / "policy.ckpt")
    model, described = export_policy(ckpt, fmt)
    policy, _, _ = load_policy(ckpt)
    obs = observations(spec)
    state = policy.initial_state(N_OBS)
    with torch.no_grad():  # two steps: the second from the state the first returned
        action, next_state = policy.act_recurrent(obs, state, "eval")
        action_2, _ = policy.act_recurrent(obs.flip(0), next_state, "eval")
    exported_action, exported_state = run_exported(model, fmt, obs, state)
    assert_same(exported_action, action)
    assert_same(exported_state, next_state)
    (exported_action_2, _) = run_exported(model, fmt, obs.flip(0), torch.from_numpy(exported_state))
    assert_same(exported_action_2, action_2)
    info = json.loads(described.read_text())
    assert info["inputs"]["state"]["shape"] == [-1, *state.shape[1:]]


def test_observation_normalization_is_folded_in_from_a_trained_checkpoint(tmp_path):
    config = str(REPO / "configs" / "pendulum_ppo.yaml")  # normalize_obs: true
    cli = RLCLI(
        args=[
            "fit",
            "--config",
            config,
            f"--trainer.default_root_dir={tmp_path}",
            "--trainer.logger=false",
            "--trainer.enable_progress_bar=false",
            "--data.init_args.max_env_steps=4096",
            "--evaluator.n_episodes=2",
        ]
    )
    ckpt = Path(cli.result["ckpt_path"])
    main(["export", "--ckpt_path", str(ckpt), "--format", "onnx", "--out", str(tmp_path / "ppo.onnx")])
    info = json.loads((tmp_path / "ppo.onnx.json").read_text())
    assert info["obs_normalization"]
    obs = observations(cli.datamodule.env_spec)
    with torch.no_grad():  # what the policy saw in training: the DataModule's standardized observations
        expected = cli.model.cpu().eval().act(cli.datamodule.preprocess_obs(obs), mode="eval")
    (exported,) = run_exported(tmp_path / "ppo.onnx", "onnx", obs)
    assert_same(exported, expected)
    assert cli.datamodule.obs_stats.count > 4000  # the statistics were trained, not the identity


def test_a_bad_format_or_path_is_one_line(tmp_path, capsys):
    for args, line in [
        (["--ckpt_path", str(tmp_path / "none.ckpt"), "--format", "onnx"], "is not a file"),
        (["--ckpt_path", __file__, "--format", "onnx"], "not a checkpoint"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            main(["export", *args])
        assert exit_info.value.code in (1, 2) and line in capsys.readouterr().err
    ckpt = save_checkpoint(DQN(env_spec=spec_of(**CARTPOLE)), tmp_path / "dqn.ckpt")
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "--ckpt_path", str(ckpt), "--format", "tflite"])
    assert exit_info.value.code == 2
    assert "error: --format: got 'tflite'; allowed: 'onnx', 'torchscript'" in capsys.readouterr().err
