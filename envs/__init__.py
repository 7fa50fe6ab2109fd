"""Environment names to gymnasium envs: short Atari names get the DeepMind pipeline, anything else
is made as gymnasium makes it (vector observations)."""
from envs.registry import EnvInfo, UnknownEnvError, env_family, env_info, make_env, resolve_env

__all__ = ["EnvInfo", "UnknownEnvError", "env_family", "env_info", "make_env", "resolve_env"]
