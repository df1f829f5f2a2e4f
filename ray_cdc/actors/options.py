"""Fault-tolerance and placement options of every actor, in one place."""

from __future__ import annotations

#: restarted by Ray after a crash, as often as it takes; in-flight calls are retried on the new one
RESTARTABLE = {"max_restarts": -1, "max_task_retries": -1}

#: a fraction of a node's custom resource: enough to pin an actor to the node, any number fit
PIN_AMOUNT = 0.01


def pinned_to(resource: str | None) -> dict:
    """Options that place an actor on the Ray node holding a Cassandra node's commitlog directory."""
    return {"resources": {resource: PIN_AMOUNT}} if resource else {}


def on_node(node_id: str, *, hard: bool = True) -> dict:
    """Options that keep an actor on the given Ray node while it lives: the pipeline's shared
    actors stay beside the driver, so losing a Cassandra host loses only that host's reader and
    transform actor. Hard by default: Ray's soft affinity was seen placing actors on other nodes
    of an idle cluster. `hard=False` for a node that cannot host them (no CPU)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return {"scheduling_strategy": NodeAffinitySchedulingStrategy(node_id, soft=not hard)}
