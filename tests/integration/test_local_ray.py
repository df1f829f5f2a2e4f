"""The Ray that ray-cdc starts itself gets the object store the config asks for (its memory bound)."""

from __future__ import annotations

import pytest
import ray

from ray_cdc.config.models import PipelineConfig
from ray_cdc.pipeline.local_ray import init_ray


def test_local_ray_object_store_is_capped_by_config(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    ray.shutdown()
    try:
        init_ray(PipelineConfig(object_store_memory=200 << 20, state_dir="state"))
        assert ray.cluster_resources()["object_store_memory"] == 200 << 20
        init_ray(PipelineConfig(object_store_memory=300 << 20, state_dir="state"))  # joined already: kept
        assert ray.cluster_resources()["object_store_memory"] == 200 << 20
    finally:
        ray.shutdown()


def test_a_local_start_that_times_out_is_tried_again(monkeypatch):
    """Under heavy load Ray's node can miss its start-up deadline; the next attempt starts it."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    ray.shutdown()
    real_init, calls = ray.init, []

    def first_times_out(*args, **kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            raise Exception("The current node timed out during startup.")  # noqa: TRY002 - what Ray raises
        return real_init(*args, **kwargs)

    monkeypatch.setattr(ray, "init", first_times_out)
    try:
        init_ray(PipelineConfig(object_store_memory=200 << 20, state_dir="state"))
        assert len(calls) == 2 and ray.is_initialized()
        assert ray.cluster_resources()["object_store_memory"] == 200 << 20
    finally:
        ray.shutdown()


def test_other_start_errors_are_not_retried(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    ray.shutdown()
    calls = []

    def refuses(*args, **kwargs):
        calls.append(kwargs)
        raise ValueError("object_store_memory is too small")

    monkeypatch.setattr(ray, "init", refuses)
    with pytest.raises(ValueError, match="too small"):
        init_ray(PipelineConfig(state_dir="state"))
    assert len(calls) == 1
