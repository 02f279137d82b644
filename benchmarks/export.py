"""Inference latency per observation (batch 1) of exported policies: the checkpoint's ``act`` in PyTorch
eager mode vs the TorchScript model (``torch.jit.load``) vs the ONNX model (onnxruntime, one thread), for
DQN, PPO (discrete and continuous), SAC, R2D2 and QMIX at their shipped network sizes (untrained
weights: latency does not depend on them), in one run.

    python benchmarks/export.py [--calls 2000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import onnxruntime as ort
import torch

from lightning_rl.datamodules import OffPolicyDataModule
from lightning_rl.envs import PettingZooEnv
from lightning_rl.export import export_policy, load_policy
from lightning_rl.policies import DQN, PPO, QMIX, R2D2, SAC

CARTPOLE, PENDULUM = {"env_id": "CartPole-v1"}, {"env_id": "Pendulum-v1"}
TEAM = {"env_id": None, "env_fn": PettingZooEnv, "env_kwargs": {"env": "mpe2.simple_spread_v3", "N": 3}}
POLICIES = {  # the shipped configs' networks
    "DQN (CartPole)": (lambda s: DQN(env_spec=s, hidden_sizes=[128, 128]), CARTPOLE),
    "PPO (CartPole)": (lambda s: PPO(env_spec=s), CARTPOLE),
    "PPO (Pendulum)": (lambda s: PPO(env_spec=s), PENDULUM),
    "SAC (Pendulum)": (lambda s: SAC(env_spec=s), PENDULUM),
    "R2D2 (CartPole)": (lambda s: R2D2(env_spec=s), CARTPOLE),
    "QMIX (simple_spread)": (lambda s: QMIX(env_spec=s, hidden_sizes=[64], lstm_size=64), TEAM),
}


def per_call_us(call: Callable[[], object], calls: int) -> float:
    """Median of 5 rounds of ``calls`` calls, in microseconds per call."""
    for _ in range(50):
        call()
    rounds = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(calls):
            call()
        rounds.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(rounds)


def measure(build: Callable, data: dict, root: str, calls: int, options: ort.SessionOptions) -> tuple:
    """``(eager, torchscript, onnx)`` microseconds per batch-1 call of one policy."""
    spec = OffPolicyDataModule(**data).env_spec
    policy = build(spec).eval()
    hparams = {"_class_path": f"{type(policy).__module__}.{type(policy).__qualname__}", **policy.hparams}
    ckpt = Path(root, "p.ckpt")
    torch.save({"hyper_parameters": hparams, "state_dict": policy.state_dict()}, ckpt)
    policy, _, _ = load_policy(ckpt)
    recurrent = hasattr(policy, "act_recurrent")
    obs = torch.randn(1, *spec["obs_shape"]).abs() + 0.5  # positive: legal moves in a packed team mask
    inputs = (obs, policy.initial_state(1)) if recurrent else (obs,)
    scripted = torch.jit.load(str(export_policy(ckpt, "torchscript", Path(root, "p.pt"))[0]))
    session = ort.InferenceSession(str(export_policy(ckpt, "onnx", Path(root, "p.onnx"))[0]), options)
    feed = {i.name: t.numpy() for i, t in zip(session.get_inputs(), inputs, strict=True)}
    with torch.no_grad():
        if recurrent:
            eager = per_call_us(lambda: policy.act_recurrent(*inputs, "eval"), calls)
        else:
            eager = per_call_us(lambda: policy.act(obs, mode="eval"), calls)
        script = per_call_us(lambda: scripted(*inputs), calls)
    return eager, script, per_call_us(lambda: session.run(None, feed), calls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    print(f"{'policy':<22} {'eager us':>9} {'torchscript us':>15} {'onnx us':>9} {'onnx/eager':>11}")
    with tempfile.TemporaryDirectory() as root:
        for name, (build, data) in POLICIES.items():
            eager, script, onnx = measure(build, data, root, args.calls, options)
            print(f"{name:<22} {eager:>9.1f} {script:>15.1f} {onnx:>9.1f} {onnx / eager:>11.2f}", flush=True)


if __name__ == "__main__":
    main()
