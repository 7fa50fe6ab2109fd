"""Presets: the files, the resolution order, the env families, --show_config and config.json."""
import json
import subprocess
import sys

import pytest

from agents import preset
from agents.config import ALGORITHMS, SECTIONS, Config, describe, parse_args
from envs import env_family
from test.test_learning import ROOT


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_every_algorithm_has_a_preset_file_whose_values_are_flags_of_the_right_type(alg):
    table = preset.load(alg, SECTIONS)   # raises PresetError on an unknown flag or a wrongly typed value
    assert set(table) == {"defaults", "family", "env"}
    assert set(table["family"]) <= set(preset.FAMILIES)


def test_resolution_order_is_flag_then_env_then_family_then_defaults():
    table = {"defaults": {"lr": 1.0, "gamma": 0.5, "nstep": 7},
             "family": {"classic": {"lr": 2.0, "gamma": 0.6}, "atari": {"lr": 9.0}},
             "env": {"CartPole-v1": {"lr": 3.0}, "Acrobot-v1": {"nstep": 1}}}
    got = preset.resolve(table, "CartPole-v1", "classic", given=set())
    assert got == {"lr": (3.0, '[env."CartPole-v1"]'), "gamma": (0.6, "[family.classic]"),
                   "nstep": (7, "[defaults]")}
    assert preset.resolve(table, "CartPole-v1", "classic", given={"lr", "nstep"}) == {
        "gamma": (0.6, "[family.classic]")}
    assert preset.resolve(table, "Pong", "atari", given=set())["lr"] == (9.0, "[family.atari]")
    assert preset.resolve(table, "Foo-v0", None, given=set()) == {"lr": (1.0, "[defaults]"),
                                                                  "gamma": (0.5, "[defaults]"),
                                                                  "nstep": (7, "[defaults]")}


@pytest.mark.parametrize("text, needle", [
    ("[defaults]\nlearning_rate = 1e-3\n", "'learning_rate' is not a flag"),
    ("[family.classic]\nbatch_size = 64.5\n", "batch_size = 64.5 should be a int"),
    ("[family.mujoco]\nlr = 1e-3\n", "unknown family ['mujoco']"),
    ("[hyper]\nlr = 1e-3\n", "unknown table(s) ['hyper']"),
    ("[env.\"CartPole-v1\"]\nalg = \"DQN\"\n", "'alg' is not a flag"),
    ("[defaults]\nlr = \n", "Invalid value"),
])
def test_a_broken_preset_file_is_refused_with_the_file_and_the_table(tmp_path, text, needle):
    path = tmp_path / "DQN.toml"
    path.write_text(text)
    with pytest.raises(preset.PresetError) as e:
        preset.load("DQN", SECTIONS, str(path))
    assert needle in str(e.value) and str(path) in str(e.value)


def test_an_int_is_accepted_where_a_float_is_meant(tmp_path):
    path = tmp_path / "DQN.toml"
    path.write_text("[defaults]\nlr = 1\n")
    assert preset.load("DQN", SECTIONS, str(path))["defaults"]["lr"] == 1.0


@pytest.mark.parametrize("env, family", [
    ("CartPole-v1", "classic"), ("Acrobot-v1", "classic"), ("MountainCar-v0", "classic"),
    ("Pendulum-v1", "continuous"), ("MountainCarContinuous-v0", "continuous"),
    ("Pong", "atari"), ("ALE/Breakout-v5", "atari"), ("test.plain_env:PlainCounter-v0", None)])
def test_env_families(env, family):
    assert env_family(env) == family


def test_parse_args_fills_what_the_user_did_not_give_and_records_where_it_came_from():
    cfg, given = parse_args(["Pong", "--alg=R2D2", "--nstep=3"])
    assert cfg.alg.nstep == 3 and cfg.alg.gamma == 0.997   # the flag wins; R2D2's [defaults] fill the rest
    assert cfg.preset["file"] == "agents/presets/R2D2.toml"
    assert cfg.preset["values"]["gamma"] == "[defaults]" and "nstep" not in cfg.preset["values"]
    text = describe(cfg, given)
    assert "nstep = 3" in text and "# given flag" in text.split("nstep = 3")[1].splitlines()[0]
    assert "# [defaults]" in text.split("gamma = 0.997")[1].splitlines()[0]
    again = Config.from_dict(json.loads(cfg.to_json()))   # config.json keeps the preset record
    assert again.preset == cfg.preset


def test_show_config_prints_the_resolution_and_exits_without_training(tmp_path):
    out = subprocess.run([sys.executable, "main.py", "CartPole-v1", "--show_config", "--lr=0.5",
                          f"--logdir={tmp_path}/logs"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("# DQN on CartPole-v1: preset file agents/presets/DQN.toml")
    assert "lr = 0.5" in out.stdout and "[family.classic]" in out.stdout
    assert not (tmp_path / "logs").exists()


def test_help_states_the_resolution_order():
    out = subprocess.run([sys.executable, "main.py", "--help"], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0
    text = " ".join(out.stdout.split())
    assert "the flag you give; the preset for the env id; the preset for its family" in text


def _needs_a_missing_dependency():
    import gymnasium
    raise gymnasium.error.DependencyNotInstalled('Foo is not installed, run `pip install "foo"`')


def test_an_env_whose_dependency_is_missing_is_a_one_line_usage_error():
    import gymnasium

    from envs import UnknownEnvError
    gymnasium.register("NeedsFoo-v0", entry_point=_needs_a_missing_dependency)
    with pytest.raises(UnknownEnvError) as e:
        env_family("NeedsFoo-v0")
    assert str(e.value) == ("environment 'NeedsFoo-v0' cannot be made: Foo is not installed, "
                            'run `pip install "foo"`')
