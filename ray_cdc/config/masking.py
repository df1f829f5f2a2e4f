"""The `masking` section: which columns each destination sees masked, and where the key comes from.

Columns are classified by name (regular expressions searched in the lower-cased column name): PII
(hashed by default) and PHI (tokenized by default; a name matching both is PHI). Explicit `rules`
(`keyspace.table.column` shell patterns -> policy, the first matching one wins) override the
classification; a destination's own `rules` come before the global ones, and a destination with
`enabled: false` sees every column in clear (e.g. the operational PostgreSQL copy). Destinations not
listed are masked: forgetting one must not leak.

The key is read from an environment variable (`key_env`) or a file (`key_file`), never from the
config itself, so the file can be shared and logged. Its presence is checked when the config is
loaded; its value is never shown.
"""

from __future__ import annotations

import os
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from ray_cdc.config.values import ConfigPath, DestinationName

#: hash: HMAC-SHA256 hex of the value; tokenize: a short deterministic token (`tok_...`, own derived
#: key, the same value gives the same token in every table, so joins still work); redact: NULL;
#: keep: the value as it is.
Policy = Literal["hash", "tokenize", "redact", "keep"]

# Searched in the column name as lower-case words (`patientId` and `patient_id` both read
# `patient id`), so `\b` marks word edges and `ssn` does not match inside `classname`.
DEFAULT_PII_PATTERNS = (
    r"\be ?mail", r"\bssn\b", r"\bsocial security\b", r"\bphone", r"\bmobile\b", r"\baddress",
    r"\bstreet\b", r"\bpostal code\b", r"\bzip ?code\b", r"\bcredit card\b", r"\bcard number\b",
    r"\bcc num", r"\biban\b", r"\bip ?addr", r"\bpassport", r"\bdrivers? licen[cs]e\b",
    r"\bdate of birth\b", r"\bdob\b", r"\btax id\b", r"\b(first|last|full) name\b",
)
DEFAULT_PHI_PATTERNS = (
    r"\bmedical record", r"\bmrn\b", r"\bdiagnos[ie]s\b", r"\bprescription", r"\bpatient id\b",
    r"\bhealth plan\b", r"\binsurance (id|number)\b", r"\bicd ?10\b", r"\bmedication", r"\btreatment",
)


def _compiles(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as e:
        raise ValueError(f"not a regular expression: {e.msg} at {e.pos}") from None
    return pattern


NamePattern = Annotated[str, Field(min_length=1), AfterValidator(_compiles)]
#: `keyspace.table.column`, each part a shell pattern (`clinic.*.notes`, `shop.orders.*`).
ColumnPattern = Annotated[str, Field(pattern=r"^[^.\s]+\.[^.\s]+\.[^.\s]+$")]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DestinationMasking(_Section):
    enabled: bool = True  # false: this destination sees every column in clear
    rules: dict[ColumnPattern, Policy] = Field(default_factory=dict)  # before the global rules


class MaskingConfig(_Section):
    key_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    key_file: ConfigPath | None = None
    pii_patterns: list[NamePattern] = Field(default_factory=lambda: list(DEFAULT_PII_PATTERNS))
    phi_patterns: list[NamePattern] = Field(default_factory=lambda: list(DEFAULT_PHI_PATTERNS))
    pii_policy: Policy = "hash"
    phi_policy: Policy = "tokenize"
    rules: dict[ColumnPattern, Policy] = Field(default_factory=dict)
    destinations: dict[DestinationName, DestinationMasking] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _key_is_there(self) -> MaskingConfig:
        """Exactly one key source, and it holds a key now (a pipeline must not start unmasked or
        fail later on a worker). Messages name the source, never the value."""
        if (self.key_env is None) == (self.key_file is None):
            raise ValueError("give exactly one of key_env, key_file (the masking key's source)")
        if self.key_env is not None and not os.environ.get(self.key_env):
            raise ValueError(f"environment variable {self.key_env} (key_env) is not set or empty")
        if self.key_file is not None and not (self.key_file.is_file() and self.key_file.stat().st_size):
            raise ValueError(f"key_file {self.key_file} is missing or empty")
        return self
