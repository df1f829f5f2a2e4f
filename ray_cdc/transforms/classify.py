"""Which masking policy each column gets, per destination: explicit rules first, then the name
classification (PHI before PII), else keep. Pure: no key, no data."""

from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatchcase

from ray_cdc.config.masking import MaskingConfig, Policy

_CAMEL_EDGE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SEPARATORS = re.compile(r"[^A-Za-z0-9]+")


def name_words(column: str) -> str:
    """`patientId`, `patient_id` and `Patient-ID` all read `patient id` (what the patterns see)."""
    return _SEPARATORS.sub(" ", _CAMEL_EDGE.sub(" ", column)).strip().lower()


@dataclass(frozen=True)
class Classifier:
    pii: tuple[re.Pattern, ...]
    phi: tuple[re.Pattern, ...]
    pii_policy: Policy
    phi_policy: Policy
    rules: tuple[tuple[str, Policy], ...]  # (keyspace.table.column pattern, policy), global
    destination_rules: dict[str, tuple[tuple[str, Policy], ...]]  # checked before the global rules
    clear: frozenset[str]  # destinations that see every column in clear

    @classmethod
    def from_config(cls, config: MaskingConfig) -> Classifier:
        return cls(tuple(re.compile(p) for p in config.pii_patterns),
                   tuple(re.compile(p) for p in config.phi_patterns),
                   config.pii_policy, config.phi_policy, tuple(config.rules.items()),
                   {name: tuple(d.rules.items()) for name, d in config.destinations.items()},
                   frozenset(name for name, d in config.destinations.items() if not d.enabled))

    def classify(self, column: str) -> Policy:
        """The policy of a column by its name alone (PHI wins over PII)."""
        words = name_words(column)
        if any(p.search(words) for p in self.phi):
            return self.phi_policy
        if any(p.search(words) for p in self.pii):
            return self.pii_policy
        return "keep"

    def policy(self, destination: str, keyspace: str, table: str, column: str) -> Policy:
        if destination in self.clear:
            return "keep"
        qualified = f"{keyspace}.{table}.{column}"
        for pattern, policy in (*self.destination_rules.get(destination, ()), *self.rules):
            if fnmatchcase(qualified, pattern):
                return policy
        return self.classify(column)
