"""The transform stage between readers and writers: plain functions over Arrow batches, chained by a
`Transformer` (the transform actor, `ray_cdc.actors.transformer`, is a thin shell around it).

Steps common to every destination run once per set: `coalesce` (drop row changes that a later
change of the same key in the same batch fully shadows) and `fill_expiry` (`_expires_at` from
writetime + TTL where it is missing). Then, per destination: masking (`masking.py`: batch, table
schema, destination name -> the schema and batch that destination may see; `no_mask` when masking
is not configured) and the destination's own `prepare(table, batch)` when it has one (type mapping
off the writer's critical path).
"""

from ray_cdc.transforms.coalesce import coalesce
from ray_cdc.transforms.masking import Mask, Masker, MaskingError, no_mask
from ray_cdc.transforms.transformer import TransformedSet, Transformer, TransformSettings
from ray_cdc.transforms.ttl import fill_expiry

__all__ = ["Mask", "Masker", "MaskingError", "TransformSettings", "TransformedSet", "Transformer", "coalesce",
           "fill_expiry", "no_mask"]
