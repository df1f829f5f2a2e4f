"""Joining the Ray cluster that runs the pipeline, or starting a local one sized for it.

A Ray that ray-cdc starts itself gets an object store of `pipeline.object_store_memory`. The
windows between stages bound the sets in flight; the cap bounds the store's resident pages, which
Ray's allocator otherwise lets drift up over a long run (its default is 30% of the machine's RAM,
and pages once touched stay resident in /dev/shm). A set that does not fit is spilled to disk by
Ray, slower but safe. A cluster (`ray job submit`, RAY_ADDRESS) keeps the size it was started with:
`ray start --object-store-memory` there (cluster.yaml does).
"""

from __future__ import annotations

import logging
import os
import time

import ray

from ray_cdc.config.models import PipelineConfig

log = logging.getLogger(__name__)

#: a local start that times out (GCS or raylet slow on a loaded machine) is tried this many times
LOCAL_START_ATTEMPTS = 3


def init_ray(pipeline: PipelineConfig | None = None) -> None:
    """Join the cluster of `ray job submit` / RAY_ADDRESS, else start a local one (its object store
    capped as `pipeline` says; Ray's default when None)."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a local run: no dashboard token to hand out
    if ray.is_initialized():
        return
    # "local", not None: a bare init would join whatever cluster a stale ray_current_cluster names
    address = os.environ.get("RAY_ADDRESS") or "local"
    options = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if address == "local" and pipeline is not None and pipeline.object_store_memory is not None:
        options["object_store_memory"] = pipeline.object_store_memory
    if address != "local":
        ray.init(address=address, **options)
        log.info("joined the Ray cluster at %s (its object store size applies)", address)
        return
    for attempt in range(1, LOCAL_START_ATTEMPTS + 1):
        try:
            ray.init(address=address, **options)
            return
        except Exception as e:  # Ray raises a bare Exception when its node does not start in time
            if "timed out" not in str(e) or attempt == LOCAL_START_ATTEMPTS:
                raise
            log.warning("the local Ray did not start in time (attempt %d of %d): %s; trying again",
                        attempt, LOCAL_START_ATTEMPTS, e)
            ray.shutdown()
            time.sleep(2 * attempt)
