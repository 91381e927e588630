"""Line protocol as ``/write`` reads it: each line checked as InfluxDB 1.6 checks it,
its time made nanoseconds, and its placement key found.

A line is checked whole by one regular expression (the common case costs one C-speed
match); a line that fails is diagnosed again, slowly, to give InfluxDB's own reason
(``missing fields``, ``bad timestamp``, ...), so a client sees the error it would see
from influxd. What only a shard can judge (a field whose type differs from the type it
already holds) is left to the shard, whose partial-write error is passed on.

Times are rewritten to nanoseconds, and a line without a time gets the router's time
of receipt: a line waiting in the spool keeps the time it was sent, not the time it is
replayed. The placement key is :func:`federation.core.placement.placement_key` of the
line's series (the one definition ``/query`` reads copies by; docs/influx-api.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from federation.core.placement import placement_key as series_placement

PRECISIONS = {
    "": 1,
    "n": 1,
    "ns": 1,
    "u": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
# InfluxDB's time range (models.MinNanoTime, MaxNanoTime).
MIN_NS, MAX_NS = -9_223_372_036_854_775_806, 9_223_372_036_854_775_806
TIME_RANGE = f"time outside range {MIN_NS} - {MAX_NS}"
INT64 = 2**63

_MEAS = r"(?:[^\\, \n]|\\.)+"
_TOK = r"(?:[^\\,= \n]|\\.)+"
_VALUE = (
    r'(?:"(?:[^"\\]|\\.)*"'  # string
    r"|-?[0-9]+i"  # integer
    r"|-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"  # float
    r"|t|T|true|True|TRUE|f|F|false|False|FALSE)"  # boolean
)
_FIELD = rf"{_TOK}={_VALUE}"
_LINE = re.compile(
    rf"(?P<key>{_MEAS}(?:,{_TOK}={_TOK})*) +(?P<fields>{_FIELD}(?:,{_FIELD})*)"
    r"(?: +(?P<time>-?[0-9]+))? *"
)
_MEASUREMENT = re.compile(_MEAS)
_TAG = re.compile(rf",({_TOK})=({_TOK})")
_UNESCAPE = re.compile(r"\\([, =])")
_UNESCAPE_NAME = re.compile(r"\\([, ])")  # a measurement name escapes only these
# Field values worth a closer look: long digit runs (an integer past int64, a float
# past float64) or exponents.
_BIG = re.compile(r"[0-9]{19}|[0-9.][eE]")
_NUMBER = re.compile(r'"(?:[^"\\]|\\.)*"|=(-?[0-9.]+(?:[eE][-+]?[0-9]+)?)(i?)(?=,|$)')


@dataclass(frozen=True)
class Parsed:
    """A body's good lines (time in nanoseconds) with their placement keys, and one
    InfluxDB-worded error per bad line."""

    lines: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def parse_body(body: str, *, precision: str, now_ns: int, placement_tag: str | None) -> Parsed:
    """Check every line of ``body`` (``precision`` one of :data:`PRECISIONS`); blank
    lines and ``#`` comments are skipped, as influxd skips them."""
    factor = PRECISIONS[precision]
    parsed = Parsed()
    for raw in body.split("\n"):
        line = raw.lstrip()
        if not line or line.startswith("#"):
            continue
        checked = _check(line, factor, now_ns, placement_tag)
        if isinstance(checked, str):
            parsed.errors.append(f"unable to parse '{line}': {checked}")
        else:
            parsed.lines.append(checked[0])
            parsed.keys.append(checked[1])
    return parsed


def _check(line: str, factor: int, now_ns: int, placement_tag: str | None) -> tuple[str, str] | str:
    """The line with its time in ns and its placement key, or why influxd refuses it."""
    match = _LINE.fullmatch(line)
    if match is None:
        return _diagnose(line)
    key, fields, stamp = match["key"], match["fields"], match["time"]
    reason = _out_of_range(fields)
    if reason is not None:
        return reason
    if stamp is not None and not -INT64 <= int(stamp) < INT64:
        return f'strconv.ParseInt: parsing "{stamp}": value out of range'
    ns = now_ns if stamp is None else int(stamp) * factor
    if not MIN_NS <= ns <= MAX_NS:
        return TIME_RANGE
    placed = _placement(key, placement_tag)
    if placed is None:
        return "duplicate tags"
    return f"{key} {fields} {ns}", placed


def placement_key(key: str, placement_tag: str | None) -> str:
    """The placement key of a line whose measurement and tags are ``key`` (escaped, as
    written)."""
    placed = _placement(key, placement_tag)
    assert placed is not None, "a line with duplicate tags has no placement"
    return placed


def _placement(key: str, placement_tag: str | None) -> str | None:
    """:func:`placement_key`, or None when a tag is named twice (the line is refused)."""
    measurement = _MEASUREMENT.match(key)
    assert measurement is not None
    found = _TAG.findall(key, measurement.end())
    tags = {_unescape(name): _unescape(value) for name, value in found}
    if len(tags) != len(found):
        return None
    name = measurement.group()
    name = _UNESCAPE_NAME.sub(r"\1", name) if "\\" in name else name
    return series_placement(name, tags, placement_tag)


def keys_of(body: bytes, placement_tag: str | None) -> list[str]:
    """The placement key of every line of a body :func:`parse_body` made (a spooled
    batch), in order."""
    keys = []
    for line in body.decode().splitlines():
        match = _LINE.fullmatch(line)
        if match is not None:
            keys.append(placement_key(match["key"], placement_tag))
    return keys


def _unescape(text: str) -> str:
    return _UNESCAPE.sub(r"\1", text) if "\\" in text else text


def _out_of_range(fields: str) -> str | None:
    """InfluxDB's reason for a well-formed number it cannot hold, else None."""
    if _BIG.search(fields) is None:
        return None
    for number, integer in _NUMBER.findall(fields):
        if not number:
            continue  # a string
        if integer and not -INT64 <= int(number) < INT64:
            return (
                f"unable to parse integer {number}: strconv.ParseInt: "
                f'parsing "{number}": value out of range'
            )
        if not integer and abs(float(number)) == float("inf"):
            return "invalid float"
    return None


def _split(text: str, separator: str, *, quotes: bool) -> list[str]:
    """``text`` cut at each unescaped ``separator`` (outside double quotes, if
    ``quotes``); runs of spaces count as one."""
    parts: list[str] = []
    current: list[str] = []
    escaped = quoted = False
    for ch in text:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"' and quotes:
            quoted = not quoted
        elif ch == separator and not quoted:
            if current or separator != " ":
                parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return parts


def _diagnose(line: str) -> str:
    """Why InfluxDB refuses ``line``, in its words (the line failed :data:`_LINE`)."""
    sections = _split(line, " ", quotes=True)
    key = sections[0]
    measurement = _MEASUREMENT.match(key)
    if measurement is None:
        return "missing measurement"
    names: set[str] = set()
    tags = key[measurement.end() :]
    for tag in _split(tags[1:], ",", quotes=False) if tags else []:
        name, equals, value = tag.partition("=")
        if not name:
            return "missing tag key"
        if not equals or not value:
            return "missing tag value"
        if name in names:
            return "duplicate tags"
        names.add(name)
    if len(sections) < 2 or not sections[1]:
        return "missing fields"
    for one in _split(sections[1], ",", quotes=True):
        reason = _field_reason(one)
        if reason is not None:
            return reason
    if len(sections) > 3:
        return "point is invalid"
    if len(sections) == 3 and not re.fullmatch(r"-?[0-9]+", sections[2]):
        return "bad timestamp"
    return "invalid field format"


def _field_reason(text: str) -> str | None:
    name, equals, value = text.partition("=")
    if not equals:
        return "invalid field format"
    if not name:
        return "missing field key"
    if not value:
        return "missing field value"
    if re.fullmatch(_VALUE, value):
        return None
    if value.startswith('"'):
        closed = re.match(r'"(?:[^"\\]|\\.)*"', value)
        return "invalid field format" if closed else "unbalanced quotes"
    if value[0] in "-.0123456789":
        return "invalid number"
    return "invalid boolean"  # influxd reads anything else as a boolean
