"""Presets: tuned hyperparameters shipped with the package, one readable TOML file per algorithm
(agents/presets/<ALG>.toml), in the spirit of RL Baselines3 Zoo's hyperparams/*.yml.

A file has up to three kinds of table, each a set of `flag = value` lines (flag names without `--`):
    [defaults]            the algorithm's own defaults (the paper's settings), for every env
    [family.<family>]     an env family: atari, minatar, classic (discrete classic control), continuous
    [env."<env id>"]      one env, as the user names it (CartPole-v1, Pong, MinAtar/Breakout-v1)
A value is resolved from the first of: the flag the user gave, the env's table, the family's table,
[defaults], the flag's own default. The resolution is pure (`resolve`); reading the files and finding
the env's family are the edges.
"""
from __future__ import annotations

import os
from dataclasses import fields

try:
    import tomllib
except ModuleNotFoundError:   # Python 3.10
    import tomli as tomllib

PRESET_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "presets")
FAMILIES = ("atari", "minatar", "classic", "continuous")
FLAG = "given flag"
DEFAULT = "flag's default"


class PresetError(ValueError):
    """A preset file that cannot be used: a typo'd flag name, a value of the wrong type, an unknown table."""


def preset_path(alg: str) -> str:
    return os.path.join(PRESET_DIR, f"{alg}.toml")


def load(alg: str, sections, path: str | None = None) -> dict:
    """The preset file of `alg` (or `path`) as {"defaults": {...}, "family": {name: {...}}, "env": {id: {...}}},
    every value checked against the flag it names. `sections`: (section name, dataclass) pairs of the config."""
    path = path or preset_path(alg)
    if not os.path.exists(path):   # every algorithm ships one: a missing file is a broken install
        raise PresetError(f"no preset file {path} for --alg={alg}; reinstall the package (pip install -e .)")
    with open(path, "rb") as f:
        try:
            raw = tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise PresetError(f"{path}: {e}") from None
    types = {fl.name: type(fl.default) for _, cls in sections for fl in fields(cls)}
    unknown = set(raw) - {"defaults", "family", "env"}
    if unknown:
        raise PresetError(f"{path}: unknown table(s) {sorted(unknown)}; "
                          "use [defaults], [family.<name>], [env.\"<id>\"]")
    bad_family = set(raw.get("family", {})) - set(FAMILIES)
    if bad_family:
        raise PresetError(f"{path}: unknown family {sorted(bad_family)}; families: {', '.join(FAMILIES)}")
    tables = [("defaults", raw.get("defaults", {}))]
    tables += [(f"family.{k}", v) for k, v in raw.get("family", {}).items()]
    tables += [(f"env.{k}", v) for k, v in raw.get("env", {}).items()]
    for where, table in tables:
        for name, value in table.items():
            if name not in types or name in ("env", "alg"):
                raise PresetError(f"{path} [{where}]: {name!r} is not a flag a preset may set")
            want = types[name]
            if want is float and isinstance(value, int) and not isinstance(value, bool):
                table[name] = float(value)
            elif type(value) is not want:
                raise PresetError(f"{path} [{where}]: {name} = {value!r} should be a {want.__name__}")
    return {"defaults": raw.get("defaults", {}), "family": raw.get("family", {}), "env": raw.get("env", {})}


def resolve(preset: dict, env: str, family: str | None, given: set[str]) -> dict[str, tuple[object, str]]:
    """{flag: (value, source)} for every flag the preset sets and the user did not give; the source names
    the table it came from ([env."X"], [family.Y], [defaults]). Pure."""
    layers = [("[defaults]", preset["defaults"])]
    if family is not None:
        layers.append((f"[family.{family}]", preset["family"].get(family, {})))
    layers.append((f'[env."{env}"]', preset["env"].get(env, {})))
    out: dict[str, tuple[object, str]] = {}
    for source, table in layers:   # later layers are more specific and win
        for name, value in table.items():
            if name not in given:
                out[name] = (value, source)
    return out
