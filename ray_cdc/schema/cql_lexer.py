"""The CQL DDL tokenizer, and the cursor a statement parser reads one statement's tokens with."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ray_cdc.errors import CqlParseError

__all__ = ["Token", "TokenStream", "Tokenizer", "split_statements"]


@dataclass(frozen=True)
class Token:
    kind: str  # ident, qident, string, dollar, number, blob, uuid, punct, end
    value: Any  # ident: lower-cased; qident/string/dollar: unescaped text; number: int|float; ...
    line: int
    text: str  # as written in the source

    def is_word(self, word: str) -> bool:
        # Keywords are never quoted: `"primary"` is a column name, not the keyword.
        return self.kind == "ident" and self.value == word

    def is_punct(self, char: str) -> bool:
        return self.kind == "punct" and self.value == char

    def describe(self) -> str:
        return "end of statement" if self.kind == "end" else repr(self.text)


def _number(text: str) -> int | float:
    return int(text) if text.lstrip("-").isdigit() else float(text)


# Tried in order at each position; the UUID comes first because it can start like a number or a name.
_PATTERN_TOKENS: tuple[tuple[str, re.Pattern, Callable[[str], Any]], ...] = (
    ("uuid", re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\b"), uuid.UUID),
    ("blob", re.compile(r"0[xX][0-9a-fA-F]*"), lambda text: bytes.fromhex(text[2:])),
    ("number", re.compile(r"-?[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?"), _number),
    ("ident", re.compile(r"[A-Za-z_][A-Za-z0-9_]*"), str.lower),
)

# Opening marker -> (token kind or None for a comment, closing marker, what an unclosed one is called).
_DELIMITED: dict[str, tuple[str | None, str, str]] = {
    "$$": ("dollar", "$$", "$$ string"),
    "/*": (None, "*/", "block comment"),
    "--": (None, "\n", ""),
    "//": (None, "\n", ""),
    "'": ("string", "'", "string"),
    '"': ("qident", '"', "quoted identifier"),
}


class Tokenizer:
    """Splits CQL text into tokens that know their line, dropping whitespace and comments."""

    def __init__(self, text: str, source: str | None = None):
        self.text = text
        self.source = source
        self.pos = 0
        self.line = 1

    def tokens(self) -> list[Token]:
        tokens = []
        while self._skip_whitespace():
            token = self._delimited() or self._patterned() or self._punct()
            if token.kind != "comment":
                tokens.append(token)
        return tokens

    def _skip_whitespace(self) -> bool:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self._advance(self.pos + 1)
        return self.pos < len(self.text)

    def _advance(self, end: int) -> tuple[int, str]:
        start, line = self.pos, self.line
        self.line += self.text.count("\n", start, end)
        self.pos = end
        return line, self.text[start:end]

    def _delimited(self) -> Token | None:
        opener = next((o for o in _DELIMITED if self.text.startswith(o, self.pos)), None)
        if opener is None:
            return None
        kind, closer, what = _DELIMITED[opener]
        start_line = self.line
        end = self._find_closer(self.pos + len(opener), closer)
        if end < 0 and closer != "\n":
            raise CqlParseError(
                f"unterminated {what}: expected a closing {closer}", source=self.source, line=start_line
            )
        line, text = self._advance(len(self.text) if end < 0 else end + len(closer))
        if kind is None:
            return Token("comment", None, line, text)
        body = text[len(opener) : len(text) - len(closer)]
        return Token(kind, body.replace(closer * 2, closer) if len(closer) == 1 else body, line, text)

    def _find_closer(self, pos: int, closer: str) -> int:
        # A quote doubled inside a quoted string or identifier is an escaped quote, not the end.
        doubled = closer in ("'", '"')
        while True:
            end = self.text.find(closer, pos)
            if end < 0 or not doubled or not self.text.startswith(closer, end + 1):
                return end
            pos = end + 2

    def _patterned(self) -> Token | None:
        for kind, pattern, convert in _PATTERN_TOKENS:
            match = pattern.match(self.text, self.pos)
            if match:
                line, text = self._advance(match.end())
                try:
                    return Token(kind, convert(text), line, text)
                except ValueError:  # an odd number of hex digits in a blob
                    raise CqlParseError(
                        f"bad {kind} literal {text!r}", source=self.source, line=line
                    ) from None
        return None

    def _punct(self) -> Token:
        line, text = self._advance(self.pos + 1)
        return Token("punct", text, line, text)


def split_statements(tokens: list[Token]) -> list[list[Token]]:
    """Token lists per statement, each ending with an `end` token on the line of its `;`."""
    statements, current = [], []
    for token in tokens:
        if token.is_punct(";"):
            if current:
                statements.append(current + [Token("end", None, token.line, ";")])
            current = []
        else:
            current.append(token)
    if current:
        statements.append(current + [Token("end", None, current[-1].line, "")])
    return statements


class TokenStream:
    """A cursor over one statement's tokens, with the expect/accept helpers a recursive parser needs."""

    def __init__(self, tokens: list[Token], source: str | None):
        self.tokens = tokens
        self.source = source
        self.index = 0

    def peek(self, offset: int = 0) -> Token:
        return self.tokens[min(self.index + offset, len(self.tokens) - 1)]

    def next(self) -> Token:
        token = self.peek()
        self.index = min(self.index + 1, len(self.tokens) - 1)
        return token

    def skip(self, count: int) -> None:
        self.index = min(self.index + count, len(self.tokens) - 1)

    def error(self, message: str, token: Token | None = None) -> CqlParseError:
        token = token or self.peek()
        return CqlParseError(message, source=self.source, line=token.line)

    def expected(self, what: str) -> CqlParseError:
        return self.error(f"expected {what}, found {self.peek().describe()}")

    def at_words(self, *words: str) -> bool:
        return all(self.peek(i).is_word(w) for i, w in enumerate(words))

    def accept_words(self, *words: str) -> bool:
        if not self.at_words(*words):
            return False
        self.index += len(words)
        return True

    def expect_words(self, *words: str) -> None:
        if not self.accept_words(*words):
            raise self.expected(" ".join(words).upper())

    def accept_punct(self, char: str) -> bool:
        if not self.peek().is_punct(char):
            return False
        self.next()
        return True

    def expect_punct(self, char: str, why: str = "") -> None:
        if not self.accept_punct(char):
            raise self.expected(f"'{char}'{' ' + why if why else ''}")

    def expect_name(self, what: str) -> Token:
        if self.peek().kind not in ("ident", "qident"):
            raise self.expected(what)
        return self.next()

    def expect_end(self) -> None:
        if self.peek().kind != "end":
            raise self.expected("';'")

    def comma_list(self, parse_item: Callable[[], Any], why: str) -> list:
        """`( item, item, ... )`, the opening parenthesis already consumed."""
        items = [parse_item()]
        while self.accept_punct(","):
            items.append(parse_item())
        self.expect_punct(")", why)
        return items
