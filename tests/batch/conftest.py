"""A local Ray instance for the batch tests (started once per session: a few seconds)."""
import pytest


@pytest.fixture(scope="session")
def ray_local():
    """Ray on this machine with two cores: what `syncanim batch` starts when given no --address."""
    from engine.batch.cluster import start_ray

    ray = start_ray(None, cpus=2)
    yield ray
    ray.shutdown()
