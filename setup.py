from setuptools import find_packages, setup

setup(
    name="apex-trainer",
    version="0.1.0",
    description="Distributed deep RL trainer on Ray: Ape-X DQN/DDQN, R2D2, DDPG/D4PG with compressed replay",
    python_requires=">=3.10",
    packages=find_packages(include=["agents*", "buffers*", "networks*", "envs*", "exp*"]),
    py_modules=["main"],
    package_data={"agents": ["presets/*.toml"]},   # the tuned hyperparameters
    install_requires=[
        # torch: install it first with `pip install torch==2.13.0` (or your CUDA build); any torch>=2.2 works
        "torch>=2.2",
        "ray>=2.40",
        "gymnasium[classic-control]>=1.0",   # pygame: --test --record of CartPole, Pendulum, ...
        "ale-py>=0.9",
        "opencv-python-headless>=4.8",
        "numpy>=1.24",
        "lz4>=4.0",
        "tensorboard>=2.14",
        "matplotlib>=3.7",          # exp/plot.py: learning curves
        "tomli>=2.0; python_version < '3.11'",   # the preset files (tomllib from Python 3.11)
    ],
    extras_require={
        "test": ["pytest>=7", "hypothesis>=6.100", "minatar>=1.0.15"],   # hypothesis: property tests
        "mujoco": ["gymnasium[mujoco]>=1.0"],   # HalfCheetah-v5, Hopper-v5, ... for DDPG / D4PG
        "minatar": ["minatar>=1.0.15"],         # MinAtar/Breakout-v1, ... (Young and Tian 2019)
    },
)
