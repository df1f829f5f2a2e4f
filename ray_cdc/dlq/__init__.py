"""The dead-letter queue: rows a destination refused, kept with their reason for inspection and replay.

Plain logic, no Ray (a thin actor wraps it). `split_rejected` + `dead_letters` turn a writer's
`WriteResult.rejected` into entries; a `DeadLetterStore` keeps them: `FileDeadLetterStore` (embedded
default) or `PostgresDeadLetterStore`.
"""

from ray_cdc.dlq.entry import DeadLetter
from ray_cdc.dlq.file_store import FileDeadLetterStore
from ray_cdc.dlq.postgres_store import PostgresDeadLetterStore
from ray_cdc.dlq.split import dead_letters, split_rejected
from ray_cdc.dlq.store import (
    DeadLetterError,
    DeadLetterFilter,
    DeadLetterNotFoundError,
    DeadLetterStore,
    Mask,
)
from ray_cdc.secrets import redact

__all__ = [
    "DeadLetter", "DeadLetterError", "DeadLetterFilter", "DeadLetterNotFoundError", "DeadLetterStore",
    "FileDeadLetterStore", "Mask", "PostgresDeadLetterStore", "dead_letters", "redact", "split_rejected",
]
