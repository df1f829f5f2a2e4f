"""Transform actors: one per Cassandra node, beside its reader (logic in ray_cdc/transforms)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import ray

from ray_cdc.actors.process import arrow_without_pandas, release_arrow_memory
from ray_cdc.transforms import TransformedSet, Transformer, TransformSettings


@dataclass(frozen=True)
class TransformerFactory:
    """Builds the Transformer inside the actor. Destinations are built *unopened*, for their pure
    `prepare` only (no connection is made here); those without one are left out. The masking key
    is read here too, from this process's environment or the key file: it never travels."""

    settings: TransformSettings = field(default_factory=TransformSettings)
    destination_factories: Mapping[str, Callable] = field(default_factory=dict)

    def __call__(self) -> Transformer:
        preparers = {}
        for name, factory in self.destination_factories.items():
            destination = factory()
            if callable(getattr(destination, "prepare", None)):
                preparers[name] = destination
        # the masking config's destination names are checked against the factories given (the
        # snapshot's masking-only factory has none: `ray-cdc run` checked them before starting)
        names = list(self.destination_factories) or None
        return Transformer(self.settings, mask=self.settings.mask(names), preparers=preparers)


# No CPU reserved: a pinned actor would otherwise hold a whole CPU for its lifetime (Ray's rule for
# actors with explicit resources), doubling each node's reservation next to its reader; its work
# (coalescing, masking, prepare) is small next to decoding.
@ray.remote(num_cpus=0)
class TransformActor:
    def __init__(self, factory: Callable[[], Transformer]):
        arrow_without_pandas()
        self._transformer = factory()

    def common(self, change_set) -> TransformedSet:
        return self._transformer.common(change_set)

    def for_destination(self, transformed: TransformedSet, destination: str) -> TransformedSet:
        """Without the batches `transformed` already holds: the writer gets `transformed` beside it
        (`WriterActor.apply(..., shared=)`), so the object store holds each batch once, not once
        per destination."""
        return self.for_destinations(transformed, [destination])

    def for_destinations(self, transformed: TransformedSet, destinations: list[str]):
        """`for_destination` of each of `destinations`, in one task (call it with
        `num_returns=len(destinations)`): destinations that load the same prepared form share its
        preparation (`Transformer.for_destinations`). One part: returned as is, not as a tuple."""
        parts = self._transformer.for_destinations(transformed, destinations)
        own = tuple(parts[d].without_batches_of(transformed) for d in destinations)
        del parts
        release_arrow_memory()  # the temporaries of `prepare`
        return own[0] if len(own) == 1 else own
