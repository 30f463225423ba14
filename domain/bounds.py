"""Bounds that make every accepted input storable: reusable annotated types for the models' fields, and
error wording that names the field without echoing the input.

PostgreSQL refuses NUL characters in text, JSON cannot encode lone surrogates (U+D800–U+DFFF), deep nesting
blows recursion limits and huge numbers overflow NUMERIC columns; a value that passes validation but can never
be written makes an activity retry forever. So text is stripped, clean and capped, `data` payloads are
JSON-like and bounded in depth, size, keys, strings, numbers and list lengths, money and dates have ranges.

Errors name the field; a custom message never includes the value (pydantic's own messages do not either:
`string_too_long` says the limit, not the string)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints, ValidationError

MAX_NAME = 200  # a person, firm, product, shop
MAX_CODE = 100  # numbers and ids: report, case, batch, certificate, listing
MAX_TEXT = 2000  # free text: a reason, a description, a lab's conclusion
MAX_URL = 2000
MAX_DATA_DEPTH = 8  # `data` itself is level 1
MAX_DATA_BYTES = 64 * 1024  # `data` encoded as UTF-8 JSON
MAX_DATA_KEY = 64
MAX_DATA_ITEMS = 200  # items of one list inside `data`
MAX_NUMBER = 10**12  # |n| of any number inside `data`, and of counts
MAX_EVIDENCE = 50
MAX_FAILED_ITEMS = 100
MAX_LEADS = 20
MAX_LIST = 100  # any other list of short texts (contested items)
MAX_MONEY = Decimal(10**10)  # CNY; the columns are numeric(14, 2)
FIRST_DATE, LAST_DATE = date(2000, 1, 1), date(2100, 12, 31)
MAX_MESSAGE = 300  # a rejection, whole
MAX_FRAGMENT = 40  # a piece of the input quoted in a message

_SURROGATE = re.compile(r"[\ud800-\udfff]")
_PLAIN_KEY = re.compile(r"[\w-]{1,40}")  # fullmatch: `$` would let a final line break through


# --- text ------------------------------------------------------------------------------------------


def text_problem(value: str) -> str | None:
    """Why `value` cannot be stored as text, or None: never quotes it."""
    if "\x00" in value:
        return "must not contain NUL characters"
    if _SURROGATE.search(value):
        return "must not contain lone surrogates (U+D800–U+DFFF)"
    return None


def _clean(value: str) -> str:
    problem = text_problem(value)
    if problem:
        raise ValueError(problem)
    return value


@dataclass(frozen=True)
class Bounded(StringConstraints):
    """String constraints (stripped, a maximum length) followed by the storability check, as one annotation:
    `Annotated[str, text(100)]`. Lengths are checked before the scan, and the JSON schema shows them."""

    def __iter__(self) -> Iterator[Any]:
        yield from super().__iter__()
        yield AfterValidator(_clean)


def text(max_length: int, *, min_length: int | None = None, pattern: str | None = None) -> Bounded:
    return Bounded(strip_whitespace=True, min_length=min_length, max_length=max_length, pattern=pattern)


def _choice(value: Any) -> Any:
    if isinstance(value, Enum) or isinstance(value, str) and len(value) <= 64:
        return value
    raise ValueError("Input should be a string naming one of the allowed values")


# Before an enum field (`Annotated[Role, Choice]`): anything but a short string is refused first, because the
# Enum constructor's own error quotes the whole value, and a deeply nested one overflows the stack.
Choice = BeforeValidator(_choice)

Name = Annotated[str, text(MAX_NAME, min_length=1)]
Code = Annotated[str, text(MAX_CODE, min_length=1)]
RequiredText = Annotated[str, text(MAX_TEXT, min_length=1)]
# For optional fields, which took an empty string before they were bounded and still do:
MaybeName = Annotated[str, text(MAX_NAME)]
MaybeCode = Annotated[str, text(MAX_CODE)]
Text = Annotated[str, text(MAX_TEXT)]
Url = Annotated[str, text(MAX_URL)]


# --- numbers, money, dates ---------------------------------------------------------------------------

Count = Annotated[int, Field(ge=0, le=MAX_NUMBER)]
Money = Annotated[Decimal, Field(ge=0, le=MAX_MONEY, decimal_places=2, description="CNY, 2 decimal places")]


def _in_range(value: date) -> date:
    day = value.date() if isinstance(value, datetime) else value
    if not FIRST_DATE <= day <= LAST_DATE:
        raise ValueError(f"must lie between {FIRST_DATE} and {LAST_DATE}")
    return value


Day = Annotated[date, AfterValidator(_in_range)]
Moment = Annotated[datetime, AfterValidator(_in_range)]


# --- JSON-like data ----------------------------------------------------------------------------------


def _scalar_problem(value: Any) -> tuple[str | None, int]:
    """Why a leaf of `data` cannot be stored, or None; and about how many bytes it takes as JSON."""
    if value is None or isinstance(value, bool):
        return None, 5
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            return f"string longer than {MAX_TEXT} characters", 0
        return text_problem(value), len(value.encode("utf-8", "surrogatepass")) + 2
    if isinstance(value, int | float | Decimal):
        # an int is always finite (and math.isfinite would overflow on a huge one)
        finite = value.is_finite() if isinstance(value, Decimal) else not isinstance(value, float) or math.isfinite(value)
        if not finite:
            return "number not finite", 0
        if not -MAX_NUMBER <= value <= MAX_NUMBER:
            return f"number beyond ±{MAX_NUMBER:.0e}", 0
        return None, 24
    if isinstance(value, date):
        return None, 34
    return f"not a JSON value ({type(value).__name__})", 0


def data_problem(value: Any) -> str | None:
    """Why a `data` payload cannot be stored, or None: the problem and where it is (a path into `data`),
    never its content. Walks at most about MAX_DATA_BYTES worth of nodes, so a huge or shared-reference
    structure costs no more than a small one."""
    size = 0
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), value)]
    while stack:
        path, node = stack.pop()
        where = _Where(path)
        if isinstance(node, dict | list | tuple):
            if len(path) >= MAX_DATA_DEPTH:
                return f"nested deeper than {MAX_DATA_DEPTH} levels{where}"
            if isinstance(node, dict):
                for key, child in node.items():
                    if not isinstance(key, str):
                        return f"key not a string{where}"
                    if len(key) > MAX_DATA_KEY:
                        return f"key longer than {MAX_DATA_KEY} characters{where}"
                    problem = text_problem(key)
                    if problem:
                        return f"key {problem}{where}"
                    size += len(key) + 4
                    if size > MAX_DATA_BYTES:
                        break
                    stack.append(((*path, key), child))
            else:
                if len(node) > MAX_DATA_ITEMS:
                    return f"list longer than {MAX_DATA_ITEMS} items{where}"
                stack.extend(((*path, i), child) for i, child in enumerate(node))
            size += 2
        else:
            problem, weight = _scalar_problem(node)
            if problem:
                return f"{problem}{where}"
            size += weight + 1
        if size > MAX_DATA_BYTES:
            break
    if size > MAX_DATA_BYTES or len(json.dumps(value, ensure_ascii=False, default=str).encode()) > MAX_DATA_BYTES:
        return f"larger than {MAX_DATA_BYTES // 1024} KiB as JSON"
    return None


@dataclass(frozen=True)
class _Where:
    """` at data.a.b` (nothing for `data` itself), worded only when a message needs it."""

    path: tuple[str | int, ...]

    def __str__(self) -> str:
        return f" at {field_path(('data', *self.path))}" if self.path else ""


def _data(value: dict[str, Any]) -> dict[str, Any]:
    problem = data_problem(value)
    if problem:
        raise ValueError(problem)
    return value


Data = Annotated[dict[str, Any], AfterValidator(_data)]


# --- messages ----------------------------------------------------------------------------------------


def quoted(value: str, limit: int = MAX_FRAGMENT) -> str:
    """A piece of the input for a message: at most `limit` characters, as a literal (control characters and
    lone surrogates escaped), never more than twice the limit in all."""
    clipped = value if len(value) <= limit else value[:limit] + "…"
    shown = repr(clipped)
    return shown if len(shown) <= 2 * limit else shown[: 2 * limit - 2] + "…'"


def field_path(loc: tuple[str | int, ...]) -> str:
    """A location as `a.b.0.c`; a key that is not a plain word is quoted and clipped, its colons escaped, so
    that the first ": " of a message always ends the field."""
    parts = [str(p) if isinstance(p, int) or _PLAIN_KEY.fullmatch(p) else quoted(p, 20).replace(":", "\\x3a")
             for p in loc]
    path = ".".join(parts)
    return path if len(path) <= 100 else path[:99] + "…"


def one_line(message: str, limit: int = MAX_MESSAGE) -> str:
    """A message safe to print and store: control characters, line breaks and lone surrogates replaced,
    at most `limit` characters."""
    message = "".join(ch if ch.isprintable() else "\ufffd" for ch in message[: limit + 1])
    return message if len(message) <= limit else message[: limit - 1] + "…"


def error_lines(err: ValidationError, prefix: str = "") -> list[str]:
    """Each problem as `<field>: <message>`, clean and bounded; never the input (pydantic keeps it in the
    error's `input`, which is not read here). A model-level rule names its field in its own message; any
    other problem without a location is about the input as a whole."""
    return problem_lines(err.errors(include_url=False, include_context=False, include_input=False), prefix)


def problem_lines(errors: Iterable[Mapping[str, Any]], prefix: str = "") -> list[str]:
    """`error_lines` for errors already listed as pydantic's dicts (e.g. by a web framework); reads only
    their `loc`, `msg` and `type`, never their `input`."""
    lines = []
    for e in errors:
        msg = one_line(e["msg"].removeprefix("Value error, "), 160)
        if e["loc"]:
            lines.append(f"{prefix}{field_path(e['loc'])}: {msg}")
        elif e["type"] == "value_error":
            lines.append(f"{prefix}{msg}")
        else:
            lines.append(f"{prefix.rstrip('.') or 'input'}: {msg}")
    return lines


def within(lines: list[str], limit: int = MAX_MESSAGE, *, more: bool = True) -> list[str]:
    """The leading lines that fit in `limit` characters joined by "; " (at least the first, clipped), and
    with `more` a last line saying how many were left out."""
    room = limit - (20 if more else 0)
    kept: list[str] = []
    for line in lines:
        if kept and len("; ".join([*kept, line])) > room:
            break
        kept.append(line if len(line) <= room else line[: room - 1] + "…")
    if more and len(kept) < len(lines):
        kept.append(f"and {len(lines) - len(kept)} more")
    return kept


# --- settings --------------------------------------------------------------------------------------


def whole_number_setting(environ: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """The whole-number setting `name` (an environment variable) from `environ`: `default` when unset; one
    that is not a whole number from `low` to `high` is refused with the variable named, never echoed."""
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 12) or not low <= int(raw) <= high:
        raise ValueError(f"{name}: must be a whole number from {low} to {high}")
    return int(raw)
