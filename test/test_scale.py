"""Scale-out: data-parallel learner replicas (gloo on the CPU) and a two-node Ray cluster on this machine."""
import json
import os
import secrets
import socket
import subprocess
import sys
import time

import pytest
import torch

from agents.config import parse_args
from agents.driver import train
from agents.optim import flatten_grads, unflatten_grads

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_flatten_and_unflatten_gradients_round_trip():
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    net(torch.ones(5, 3)).sum().backward()
    params = list(net.parameters())
    params[3].grad = None                                   # a parameter that got no gradient
    flat = flatten_grads(params)
    assert flat.numel() == sum(p.numel() for p in params)
    expected = [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in params]
    unflatten_grads(flat * 2, params)
    for p, e in zip(params, expected):
        assert torch.equal(p.grad, e * 2)


@pytest.mark.slow
def test_learner_replicas_stay_bit_identical(ray_session, tmp_path):
    """Two learner replicas joined by torch.distributed (gloo), each on its own loader's batches:
    after a few hundred updates their whole learner states (networks, target, Adam) hash the same."""
    cfg, given = parse_args([
        "CartPole-v1", "--alg=DDQN", "--buffer=pmdb", "--learner_replicas=2", "--num_loaders=2", "--num_agents=2",
        "--max_steps=6000", "--batch_size=32", "--replay_start=500", "--target_period=100", "--eval_period=0",
        "--suffix=ddp", f"--logdir={tmp_path}/logs", f"--modeldir={tmp_path}/model", "--status_period=5"])
    summary = train(cfg, given)
    replicas = summary["learner_replicas"]
    assert [r["rank"] for r in replicas] == [0, 1]
    assert replicas[0]["steps"] == replicas[1]["steps"] == summary["learner_steps"] >= 300, replicas
    assert replicas[0]["sha256"] == replicas[1]["sha256"], replicas
    assert replicas[0]["loss"] != replicas[1]["loss"]     # they trained on different batches
    assert os.path.exists(summary["checkpoint"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_node(args: list[str], env: dict, log) -> subprocess.Popen:
    proc = subprocess.Popen(["ray", "start", "--node-ip-address=127.0.0.1", "--num-cpus=1", "--block", *args],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return proc


@pytest.mark.slow
def test_a_run_joins_a_two_node_cluster_with_token_auth(tmp_path):
    """`ray start --head` and a second `ray start --address` on 127.0.0.1, token authentication on for
    every process (RAY_AUTH_MODE=token, one shared token); main.py --address joins the cluster, spreads
    its agents and replay shards over both nodes, keeps the loaders beside the learner and trains. The
    nodes are stopped by terminating their `ray start --block` processes, so the test's own local Ray
    (if any) is untouched."""
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}
    env.pop("RAY_ADDRESS", None)
    port = _free_port()
    address = f"127.0.0.1:{port}"
    nodes = []
    with open(tmp_path / "ray.log", "w") as log:
        try:
            nodes.append(_start_node(["--head", f"--port={port}", "--include-dashboard=false"], env, log))
            time.sleep(8)
            nodes.append(_start_node([f"--address={address}"], env, log))
            status = ""
            for _ in range(30):
                time.sleep(2)
                status = subprocess.run(["ray", "status", f"--address={address}"], env=env, capture_output=True,
                                        text=True, timeout=60).stdout
                if "/2.0 CPU" in status:   # both nodes registered with their CPUs
                    break
            assert "/2.0 CPU" in status, status
            proc = subprocess.run(
                [sys.executable, "main.py", "CartPole-v1", f"--address={address}", "--num_agents=4",
                 "--replay_shards=2", "--num_loaders=3", "--max_steps=3000", "--replay_start=500",
                 "--batch_size=32", "--eval_period=0", "--suffix=cluster",
                 f"--logdir={tmp_path}/logs", f"--modeldir={tmp_path}/model", "--status_period=5"],
                cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        finally:
            for node in reversed(nodes):
                node.terminate()
            for node in reversed(nodes):
                try:
                    node.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(node.pid, 9)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    with open(proc.stdout.strip().splitlines()[-1]) as f:
        summary = json.load(f)
    assert summary["env_steps"] >= 3000 and summary["learner_steps"] > 0
    # agents and replay shards are placed round-robin over the two nodes, loaders beside the learner
    assert summary["agent_nodes"] == 2 and summary["replay_nodes"] == 2, summary
    assert summary["loaders_off_learner_node"] == 0, summary
