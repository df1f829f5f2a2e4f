"""Fault-tolerance and placement options of every actor, in one place."""

from __future__ import annotations

#: restarted by Ray after a crash, as often as it takes; in-flight calls are retried on the new one
RESTARTABLE = {"max_restarts": -1, "max_task_retries": -1}

#: a fraction of a node's custom resource: enough to pin an actor to the node, any number fit
PIN_AMOUNT = 0.01


def pinned_to(resource: str | None) -> dict:
    """Options that place an actor on the Ray node holding a Cassandra node's commitlog directory."""
    return {"resources": {resource: PIN_AMOUNT}} if resource else {}
