"""The Ray that ray-cdc starts itself gets the object store the config asks for (its memory bound)."""

from __future__ import annotations

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
