"""`load_config`: YAML file -> `${VAR}` interpolation -> `RAY_CDC__...` overrides -> validated `Config`.

Every failure is one `ConfigError` naming the file and the key path (`destinations.pg.dsn: ...`), on
one line (the CLI prints errors on one line). No message quotes a value the user wrote (keys and
`type` names aside): values may be secrets. For the same reason no ConfigError is chained to the pydantic or YAML error behind it, whose
text does quote values (pydantic's `input_value=...`, YAML's snippet of the offending line).
"""

from __future__ import annotations

import difflib
import os
import re
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from ray_cdc.config.models import Config
from ray_cdc.errors import ConfigError

ENV_PREFIX = "RAY_CDC__"

Key = str | int  # a key of a mapping or an index of a list, in the raw data


def load_config(path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None) -> Config:
    """The validated configuration of `path`; `environ` (default `os.environ`) supplies `${VAR}`
    values and `RAY_CDC__SECTION__KEY=value` overrides. Raises ConfigError."""
    path = Path(path)
    env = os.environ if environ is None else environ
    data = _interpolate(_read_yaml(path), env, path, ())
    overridden = _apply_overrides(data, env)
    message = None
    try:
        return Config.model_validate(data, context={"base_dir": path.parent.absolute()})
    except ValidationError as e:
        message = _describe(e, path, overridden)
    raise ConfigError(message)  # outside the except block: no __context__ quoting the input


# --- YAML ----------------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """Safe YAML that rejects a key written twice in one mapping: PyYAML silently keeps the last one,
    so a second `dsn:` further down would quietly win."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key_node.value!r}", key_node.start_mark)
                seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: Path) -> dict[Any, Any]:
    message = None
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)
    except FileNotFoundError:
        message = f"{path}: config file not found"
    except OSError as e:
        message = f"{path}: cannot read the config file: {e.strerror}"
    except UnicodeDecodeError as e:
        message = f"{path}: not UTF-8 text (byte {e.start})"
    except yaml.MarkedYAMLError as e:
        # the mark and the problem, never str(e): that quotes the offending line, maybe a password
        mark = e.problem_mark or e.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        message = f"{where}: invalid YAML: {e.problem or e.context}"
    except yaml.YAMLError as e:
        message = f"{path}: invalid YAML: {type(e).__name__}"
    if message is not None:
        raise ConfigError(message)
    if data is None:  # an empty file: validation then says which sections are required
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections (sources, schema, destinations, ...), "
                          f"not a {type(data).__name__}")
    return data


# --- ${VAR} interpolation ------------------------------------------------------------------------

# ${NAME}, ${NAME:-default} (used when NAME is unset or empty, as in the shell); $${NAME} is the
# literal text ${NAME}. A lone `$` is left alone: passwords contain them.
_VARIABLE = re.compile(r"(\$?)\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _interpolate(node: Any, env: Mapping[str, str], path: Path, where: tuple[Key, ...]) -> Any:
    if isinstance(node, dict):
        return {k: _interpolate(v, env, path, (*where, k)) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate(v, env, path, (*where, i)) for i, v in enumerate(node)]
    if not isinstance(node, str):
        return node

    def substitute(m: re.Match[str]) -> str:
        escaped, name, default = m.groups()
        if escaped:
            return m[0][1:]
        value = env.get(name)
        if default is not None and not value:
            return default
        if value is None:
            raise ConfigError(f"{path}: {_dotted(where)}: environment variable {name} is not set")
        return value

    return _VARIABLE.sub(substitute, node)


# --- RAY_CDC__SECTION__KEY overrides -------------------------------------------------------------

_NULLS = {"", "~", "null", "Null", "NULL"}


def _env_value(text: str) -> Any:
    """An override's value, read as YAML where that cannot mangle it: `null`/`~`/empty is None, a
    quoted string is that string, `[a, b]` and `{k: v}` are a list and a mapping. Anything else stays
    the text and the field's type converts it (`"1000"` -> 1000, `"true"` -> True, `"2s"` -> 2.0): YAML
    itself would read a password `0123` as 83 and `on` as True, or cut `a #b` at the `#`."""
    stripped = text.strip()
    if stripped in _NULLS:
        return None
    if stripped[:1] in ("[", "{", "'", '"'):
        try:
            return yaml.safe_load(stripped)
        except yaml.YAMLError:
            return text
    return text


def _apply_overrides(data: dict[Any, Any], env: Mapping[str, str]) -> dict[tuple[Key, ...], str]:
    """Apply every RAY_CDC__... variable to `data` in place; returns the key path each one set.
    Keys match case-insensitively (variables are upper case, keys lower case); a list item is
    addressed by its index (`RAY_CDC__SOURCES__0__COMMITLOG_DIR`)."""
    applied: dict[tuple[Key, ...], str] = {}
    for var in sorted(v for v in env if v.startswith(ENV_PREFIX)):  # a section before its keys
        names = var[len(ENV_PREFIX):].split("__")
        if not all(names):
            raise ConfigError(f"{var}: empty key in the variable name (keys are separated by exactly __)")
        applied[_set(data, names, _env_value(env[var]), var)] = var
    return applied


def _set(data: dict[Any, Any], names: list[str], value: Any, var: str) -> tuple[Key, ...]:
    node: Any = data
    where: tuple[Key, ...] = ()
    for depth, name in enumerate(names):
        key: Key
        if isinstance(node, list):
            if not name.isdigit() or int(name) >= len(node):
                raise ConfigError(f"{var}: {_dotted(where)} has no item {name} (it has {len(node)})")
            key = int(name)
        else:
            key = next((k for k in node if isinstance(k, str) and k.lower() == name.lower()), name.lower())
        where = (*where, key)
        if depth == len(names) - 1:
            node[key] = value
            break
        child = node[key] if isinstance(node, list) or key in node else None
        if child is None:
            child = node[key] = {}
        elif not isinstance(child, (dict, list)):
            raise ConfigError(f"{var}: {_dotted(where)} is a value, not a section")
        node = child
    return where


# --- messages ------------------------------------------------------------------------------------


def _dotted(where: tuple[Key, ...]) -> str:
    text = "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in where).lstrip(".")
    return text or "(top level)"


def _describe(error: ValidationError, path: Path, overridden: dict[tuple[Key, ...], str]) -> str:
    problems = []
    # unknown keys first: a typo'd key is usually also why a required one is "missing"
    for e in sorted(error.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden"):
        where, keys, tp = _locate(e["loc"])
        problem = _problem(e, keys, tp)
        if e["type"] in ("union_tag_invalid", "union_tag_not_found"):
            where = (*where, "type")
        var = next((v for p, v in overridden.items() if where[:len(p)] == p), None)
        problems.append(f"{_dotted(where)}: {problem}" + (f" (set by {var})" if var else ""))
    return f"{path}: " + "; ".join(problems)


def _problem(e: Any, keys: list[str], tp: Any) -> str:
    kind, ctx = e["type"], e.get("ctx", {})
    if kind == "extra_forbidden":
        return "unknown key" + _hint(str(e["loc"][-1]), keys, "valid keys")
    if kind == "union_tag_invalid":
        tags = [t.strip(" '") for t in ctx["expected_tags"].split(",")]
        return f"unknown type {ctx['tag']!r}" + _hint(str(ctx["tag"]), tags, "expected")
    if kind == "union_tag_not_found":
        return f"required, one of: {', '.join(str(_tag(m)) for m in get_args(_unwrap(tp)))}"
    if kind == "missing":
        return "required"
    if kind == "value_error":
        return str(ctx["error"])
    if kind == "string_type" and isinstance(e.get("input"), (int, float, bool)):
        # looks at the input's type only, never shows it; `password: 0123` must be quoted in YAML
        return "expected a string (quote the value in YAML)"
    return str(e["msg"])


def _hint(word: str, choices: list[str], label: str) -> str:
    close = difflib.get_close_matches(word.lower(), choices, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else f"; {label}: {', '.join(choices)}"


def _locate(loc: tuple[Any, ...]) -> tuple[tuple[Key, ...], list[str], Any]:
    """The key path of a pydantic error location (without the union tags pydantic inserts, so it
    is the path the user wrote), the valid keys where its last key was found, and its type."""
    tp: Any = Config
    where: list[Key] = []
    keys: list[str] = []
    for part in loc:
        tp = _unwrap(tp)
        keys = []
        if part == "[key]":  # a dict key failed: the location already names it
            continue
        if _is_union(tp):  # a discriminated union inserts the tag of the member it chose
            tp = next((m for m in get_args(tp) if _tag(m) == part), None)
            continue
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            fields = {(f.alias or n): f for n, f in tp.model_fields.items()}
            keys = list(fields)
            tp = fields[part].annotation if part in fields else None
        elif get_origin(tp) in (dict, list):
            tp = get_args(tp)[-1]
        else:
            tp = None
        where.append(part)
    return tuple(where), keys, tp


def _unwrap(tp: Any) -> Any:
    """Annotated[X, ...] -> X, and X | None -> X."""
    while True:
        if get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
        elif _is_union(tp) and type(None) in get_args(tp):
            members = [a for a in get_args(tp) if a is not type(None)]
            if len(members) != 1:
                return tp
            tp = members[0]
        else:
            return tp


def _is_union(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType)


def _tag(model: Any) -> Any:
    """The `type` a member of a discriminated union answers to (`postgres` of PostgresDestination)."""
    field = getattr(model, "model_fields", {}).get("type")
    if field is None or get_origin(field.annotation) is not Literal:
        return None
    return get_args(field.annotation)[0]
