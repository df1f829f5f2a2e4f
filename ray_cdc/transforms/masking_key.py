"""The masking key: read from the environment or a secret file inside the process that masks, and
held so that it never shows (repr, str, pickling, errors). Two keys are derived from it, one per
policy, so a hashed value cannot be matched against a tokenized one."""

from __future__ import annotations

import hashlib
import hmac
import os

from ray_cdc.config.masking import MaskingConfig
from ray_cdc.errors import ConfigError


class MaskingKeyError(ConfigError):
    """The masking key is missing or unreadable; names its source (variable or file), never a value."""


class MaskingKey:
    __slots__ = ("_hash", "_token")

    def __init__(self, secret: bytes):
        if not secret:
            raise MaskingKeyError("the masking key is empty")
        self._hash = hmac.digest(secret, b"ray_cdc masking: hash", hashlib.sha256)
        self._token = hmac.digest(secret, b"ray_cdc masking: tokenize", hashlib.sha256)

    def hash_hex(self, value: bytes) -> str:
        return hmac.digest(self._hash, value, "sha256").hex()

    def token(self, value: bytes) -> str:
        # 96 bits: collisions are negligible at any table size, and tokens stay short in indexes
        return "tok_" + hmac.digest(self._token, value, "sha256")[:12].hex()

    def __repr__(self) -> str:
        return "MaskingKey(***)"

    __str__ = __repr__

    def __reduce__(self):
        # a key is loaded where it is used; it never travels through the object store or a pickle
        raise TypeError("a MaskingKey is not picklable: load it with load_key() where it is used")


def load_key(config: MaskingConfig, environ=None) -> MaskingKey:
    environ = os.environ if environ is None else environ
    if config.key_env is not None:
        secret = environ.get(config.key_env, "")
        if not secret:
            raise MaskingKeyError(f"masking.key_env: environment variable {config.key_env} is not set or empty")
        return MaskingKey(secret.encode())
    try:
        secret = config.key_file.read_bytes().rstrip(b"\r\n")
    except OSError as e:
        raise MaskingKeyError(f"masking.key_file: cannot read {config.key_file}: {e.strerror}") from None
    if not secret:
        raise MaskingKeyError(f"masking.key_file: {config.key_file} is empty")
    return MaskingKey(secret)
