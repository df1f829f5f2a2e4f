"""Strip credentials from anything that may reach a log, an error or the DLQ: the one place for it.

Driver errors sometimes echo the connection string they were given (a DSN in a URI, or libpq
`key=value` pairs); the DLQ is read by operators and copied into tickets, so it must never hold one.
Redaction errs on the side of hiding too much: a masked non-secret costs nothing, a leaked one does.
"""

from __future__ import annotations

import re

MASK = "***"

# scheme://user:password@host -> keep the user (useful to debug), hide the password. The password
# runs to the LAST `@` of its whitespace-free token, so an unescaped `@` or `/` inside it stays hidden.
_URI_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)(?P<secret>[^\s]*)(?=@)")

# password=secret, password='s e c', "password": "x", sslpassword=..., PGPASSWORD=..., ?password=x&...
_KEY_VALUE = re.compile(
    r"""(?P<head>\b[\w.-]*(?:password|passwd|pwd|secret)[\w.-]*["']?\s*[=:]\s*)"""
    r"""(?P<secret>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s&;,'"}]+)""",
    re.IGNORECASE,
)


def redact(message: str) -> str:
    """`message` without passwords: `postgresql://u:pw@h` -> `postgresql://u:***@h`,
    `password=pw` -> `password=***` (quoted values too)."""
    message = _URI_PASSWORD.sub(lambda m: m["head"] + MASK, message)
    return _KEY_VALUE.sub(lambda m: m["head"] + MASK, message)
