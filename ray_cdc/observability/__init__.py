"""The health and metrics HTTP API of a running pipeline (`ray-cdc run`).

`/health` (the process answers), `/ready` (every actor of the running pass alive, every destination
reachable), `/status` (lag per node and segment, rows/s per destination, DLQ size, snapshot
progress), `/metrics` (Prometheus text) and `/openapi.json` (the document describing them all).

The logic is plain: `segments.py` reads the segment files, `status.py` computes lag from them and the
committed offsets, `observations.py` accumulates what the writers' destinations report, `metrics.py`
renders Prometheus text, `readiness.py` checks actors and destinations. `ObserverActor` (actor.py)
is the thin shell the writers report to; `PipelineView` (view.py) gathers it all for the server.
"""
