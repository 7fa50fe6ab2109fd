import os

import pytest
from hypothesis import settings

# property tests: the same examples on every run (CI is reproducible); HYPOTHESIS_PROFILE=explore searches
# ten times as many, new ones each run
settings.register_profile("ci", derandomize=True, max_examples=100, print_blob=True)
settings.register_profile("explore", max_examples=1000, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

os.environ.setdefault("RAY_DEDUP_LOGS", "0")


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray for the whole test run (starting Ray takes ~10 s)."""
    import ray

    os.environ.pop("RAY_ADDRESS", None)
    ray.init(address="local", num_cpus=2, include_dashboard=False, configure_logging=False)
    yield ray
    ray.shutdown()
