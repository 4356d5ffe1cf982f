"""Reading manifest files: the only module that turns a YAML file into documents.

A `BertSweep` manifest reaches a cluster through `kubectl apply`, which converts each YAML
document to JSON with sigs.k8s.io/yaml (go-yaml v2 underneath) before the API server sees it.
`bertsweep run` and `bertsweep validate` must accept and refuse the same files, and read the
same values from them, so this reader mirrors that conversion instead of PyYAML's own YAML 1.1
reading:

- Plain scalars resolve as go-yaml v2 resolves them: `1e-5`, `1E5` and `.5` are numbers (PyYAML
  reads `1e-5` as a string), `0x1F`, `0o17`, `017` and `1_000` are integers, timestamps and
  `1:20` stay strings (PyYAML makes dates and base-60 integers), and y/Y/yes/n/no/on/off/
  true/false in any of their three spellings are booleans. Quoted scalars are always strings.
- Numbers then become what the API server decodes from kubectl's JSON: Go writes a whole
  float64 below 1e21 without a fraction (`2.0` arrives as `2`) and the server keeps a JSON
  number as int64 when it can, so every whole number within int64 is an `int` here and every
  other number a `float`. `.inf` and `.nan` cannot be written as JSON and are refused, naming
  the field.
- Mapping keys become JSON strings as sigs.k8s.io/yaml makes them (`1` -> "1", `yes` -> "true",
  `0.5` -> "0.5"); a null key, or a sequence or mapping as a key, is refused.
- A key written twice in one mapping is refused with both lines (kubectl's default
  `--validate=strict` refuses duplicate fields). Merge keys (`<<: *base`, or a list of
  mappings) work as in go-yaml v2: their entries are set where the `<<` stands, an explicit
  key written after it overrides them, and earlier mappings in a merged list win.
- Anchors may be redefined; an alias to an anchor that is still open, or to none, is refused.
  Alias expansion is budgeted by go-yaml's own rule, so a "billion laughs" file fails with
  "document contains excessive aliasing" at once, before anything is expanded.
- Nesting deeper than MAX_DEPTH levels is refused (pydantic's JSON parser gives up near 200
  levels and no Kubernetes object needs a tenth of that), as is a file larger than MAX_BYTES
  or one that is not UTF-8 (or UTF-16 with a byte-order mark) text.

Every problem is a `ManifestError` whose message names the file, the line and, where there is
one, the field path (`spec.parameters[0].max`) in the form pydantic's messages use.

Parsing uses libyaml's C parser (`yaml.CSafeLoader`) when PyYAML was built with it, else the
pure-Python one: only the parser's event stream is used, and values are built from it here,
iteratively, so that aliases are budgeted before they are expanded, duplicate keys keep their
line numbers, and no depth of nesting can exhaust the Python stack.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import codecs
import math
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TypeAlias

import yaml

from bertsweep.api import SWEEP_KIND, BertSweepManifest, ManifestError, parse_manifest

JSONValue: TypeAlias = "dict[str, JSONValue] | list[JSONValue] | str | int | float | bool | None"

MAX_BYTES = 64 * 1024 * 1024  # far above any sweep; the API server itself takes at most 3 MiB
MAX_DEPTH = 100  # levels of mappings and sequences in one document

_INT64_MIN, _INT64_LIMIT, _UINT64_LIMIT = -(2**63), 2**63, 2**64
_LONG_TAG = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = (_LONG_TAG + t for t in ("str", "int", "float", "bool", "null"))
_TIMESTAMP, _BINARY, _MERGE = (_LONG_TAG + t for t in ("timestamp", "binary", "merge"))
# The tags go-yaml resolves (sigs.k8s.io/yaml's fork adds !!null); any other tag on a scalar
# leaves its text a string, and tags on mappings and sequences are ignored.
_RESOLVABLE = frozenset({_STR, _INT, _FLOAT, _BOOL, _NULL, _TIMESTAMP})
_TAG_KIND = {_STR: "str", _INT: "int", _FLOAT: "float", _BOOL: "bool", _NULL: "null"}

# A scalar as go-yaml types it: (kind, value), kind one of str, int (int64), uint (uint64 or a
# big.Int: beyond int64, so the API server holds it as a float64), float, bool, null.
_Scalar: TypeAlias = tuple[str, "str | int | float | bool | None"]

# go-yaml's resolve table: the first character says what a plain scalar may be.
_HINTS = {c: "D" for c in "0123456789"} | {"+": "S", "-": "S", ".": "."}
_HINTS |= {c: "M" for c in "yYnNtTfFoO~"}
_WORDS: dict[str, _Scalar] = {}
for _value, _kind, _spellings in (
    (True, "bool", "y Y yes Yes YES true True TRUE on On ON"),
    (False, "bool", "n N no No NO false False FALSE off Off OFF"),
    (None, "null", "~ null Null NULL"),
    (math.nan, "float", ".nan .NaN .NAN"),
    (math.inf, "float", ".inf .Inf .INF +.inf +.Inf +.INF"),
    (-math.inf, "float", "-.inf -.Inf -.INF"),
):
    _WORDS |= {spelling: (_kind, _value) for spelling in _spellings.split()}
_WORDS[""] = ("null", None)
_YAML_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?\Z")
# What strconv.ParseFloat accepts of a string that starts with a dot.
_DOT_FLOAT = re.compile(r"\.[0-9]+([eE][-+]?[0-9]+)?\Z")
_DIGITS = {2: frozenset("01"), 8: frozenset("01234567"), 10: frozenset("0123456789")}
_DIGITS[16] = frozenset("0123456789abcdefABCDEF")
# go-yaml's timestamp layouts: 2006-1-2, with T/t and a zone, or a space and no zone.
_TIMESTAMP_TEXT = re.compile(
    r"(\d{4})-(\d{1,2})-(\d{1,2})"
    r"(?:[Tt](\d{1,2}):(\d{1,2}):(\d{1,2})(?:[.,]\d+)?(?:Z|[+-]\d{2}:\d{2})"
    r"| (\d{1,2}):(\d{1,2}):(\d{1,2})(?:[.,]\d+)?)?\Z"
)


class _Problem(Exception):
    """A value kubectl would not send; the reader adds the file, line and field."""


# ---- Scalars -----------------------------------------------------------------------------


def _resolve_plain(text: str) -> _Scalar:
    """An untagged plain scalar as go-yaml v2 types it (its `resolve` with no tag)."""
    hint = _HINTS.get(text[:1]) if text else "N"
    if hint is None:
        return ("str", text)
    word = _WORDS.get(text)
    if word is not None:
        return word
    if hint == "." and _DOT_FLOAT.match(text):
        number = float(text)
        if math.isfinite(number):  # ParseFloat fails on overflow: the text stays a string
            return ("float", number)
    elif hint in ("D", "S"):
        return _number(text)
    return ("str", text)


def _go_unsigned(text: str) -> tuple[int | None, bool]:
    """strconv.ParseInt/ParseUint's reading of `text` with base 0: (magnitude or None when
    it is no integer, whether it carries a sign)."""
    signed = text[:1] in ("+", "-")
    digits = text[1:] if signed else text
    if not digits:
        return None, signed
    base = 10
    if digits[0] == "0":
        prefix = digits[1:2].lower()
        if len(digits) >= 3 and prefix in ("b", "o", "x"):
            base, digits = {"b": 2, "o": 8, "x": 16}[prefix], digits[2:]
        else:
            base, digits = 8, digits[1:]  # a leading 0 is octal, as in Go
    if not _DIGITS[base].issuperset(digits):
        return None, signed
    digits = digits.lstrip("0") or "0"
    if base == 10 and len(digits) > 400:
        # Beyond any float64 as well; Python refuses to convert such long decimal strings.
        return 10**400, signed
    return int(digits, base), signed


def _number(text: str) -> _Scalar:
    """A plain scalar starting with a digit or a sign, as go-yaml's resolve reads it."""
    plain = text.replace("_", "")
    magnitude, signed = _go_unsigned(plain)
    if magnitude is not None:
        value = -magnitude if plain[0] == "-" else magnitude
        if _INT64_MIN <= value < _INT64_LIMIT:
            return ("int", value)
        if not signed and value < _UINT64_LIMIT:
            return ("uint", value)
    if _YAML_FLOAT.match(plain):
        number = float(plain)
        if math.isfinite(number):
            return ("float", number)
    if magnitude is not None and not signed:
        return ("uint", magnitude)  # go-yaml falls back to a big.Int
    return ("str", text)


def _is_timestamp(text: str) -> bool:
    match = _TIMESTAMP_TEXT.match(text)
    if match is None:
        return False
    year, month, day = (int(g) for g in match.groups()[:3])
    if not (1 <= month <= 12 and 1 <= day <= calendar.monthrange(year or 2000, month)[1]):
        return False
    clock = [int(g) for g in match.groups()[3:] if g is not None]
    return not clock or (clock[0] < 24 and clock[1] < 60 and clock[2] < 60)


def _short(tag: str) -> str:
    return "!!" + tag.removeprefix(_LONG_TAG) if tag.startswith(_LONG_TAG) else tag


def _resolve_tagged(tag: str, text: str) -> _Scalar:
    """A scalar with an explicit tag, as go-yaml v2 decodes it into an interface{}."""
    if tag == _BINARY:
        try:
            data = base64.b64decode(text.replace("\r", "").replace("\n", ""), validate=True)
        except (binascii.Error, ValueError):
            raise _Problem("!!binary value contains invalid base64 data") from None
        return ("str", data.decode("utf-8", "replace"))  # Go's JSON encoder replaces bad bytes
    if tag not in _RESOLVABLE or tag == _STR:
        return ("str", text)
    if tag == _TIMESTAMP:
        if _is_timestamp(text):
            return ("str", text)  # go-yaml keeps a timestamp's text in an interface{}
        kind, _ = _resolve_plain(text)
        raise _Problem(f"cannot decode !!{kind} `{text}` as a !!timestamp")
    kind, value = _resolve_plain(text)
    if tag == _FLOAT and kind == "int":
        return ("float", float(value))  # type: ignore[arg-type]
    if _TAG_KIND[tag] != kind.replace("uint", "int"):
        raise _Problem(f"cannot decode !!{kind.replace('uint', 'int')} `{text}` as a {_short(tag)}")
    return (kind, value)


def _scalar(event: yaml.ScalarEvent) -> _Scalar:
    tag = event.tag
    if tag is None:
        return _resolve_plain(event.value) if event.implicit[0] else ("str", event.value)
    if tag == "!":  # the non-specific tag: go-yaml leaves the text a string
        return ("str", event.value)
    return _resolve_tagged(tag, event.value)


def _json_value(scalar: _Scalar) -> JSONValue:
    """The value the API server decodes from the JSON kubectl writes for this scalar."""
    kind, value = scalar
    if kind == "float":
        assert isinstance(value, float)
        if not math.isfinite(value):
            text = ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf")
            raise _Problem(
                f"{text} is not a finite number, and JSON (what kubectl sends) has no "
                "infinity or NaN; quote it if you meant a string"
            )
        if value.is_integer() and abs(value) < 1e21:
            # Go writes it without a fraction, in its shortest digits; the server reads int64.
            whole = int(Decimal(repr(value)))
            if _INT64_MIN <= whole < _INT64_LIMIT:
                return whole
        return value
    if kind == "uint":
        assert isinstance(value, int)
        try:
            return float(value)
        except OverflowError:
            raise _Problem("the number is too large for JSON") from None
    return value


def _go_float32(value: float) -> str:
    """strconv.FormatFloat(value, 'g', -1, 32), which sigs.k8s.io/yaml uses for float keys."""
    if math.isnan(value):
        return ".nan"
    try:
        single = struct.unpack("<f", struct.pack("<f", value))[0]
    except OverflowError:
        single = math.copysign(math.inf, value)
    if math.isinf(single):
        return ".inf" if single > 0 else "-.inf"
    if single == 0:
        return "-0" if math.copysign(1.0, single) < 0 else "0"
    for precision in range(9):
        text = f"{single:.{precision}e}"
        if struct.unpack("<f", struct.pack("<f", float(text)))[0] == single:
            break
    mantissa, exponent_text = text.split("e")
    digits = mantissa.lstrip("-").replace(".", "").rstrip("0") or "0"
    exponent = int(exponent_text)
    sign = "-" if single < 0 else ""
    if exponent < -4 or exponent >= 6:
        body = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{body}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    if exponent < 0:
        return f"{sign}0.{'0' * (-exponent - 1)}{digits}"
    whole, fraction = digits[: exponent + 1].ljust(exponent + 1, "0"), digits[exponent + 1 :]
    return sign + whole + ("." + fraction if fraction else "")


def _json_key(scalar: _Scalar) -> str:
    """A mapping key as sigs.k8s.io/yaml turns it into a JSON object's key."""
    kind, value = scalar
    if kind == "str":
        assert isinstance(value, str)
        return value
    if kind == "bool":
        return "true" if value else "false"
    if kind == "int":
        return str(value)
    if kind == "float":
        assert isinstance(value, float)
        return _go_float32(value)
    if kind == "null":
        raise _Problem("a mapping key is null; quote it if it is meant as text")
    raise _Problem(f"the mapping key {value} is too large a number; quote it")


# ---- Building documents from the parser's events -------------------------------------------


def _allowed_alias_ratio(decoded: int) -> float:
    """go-yaml's budget: the share of decoded values that may come from alias expansion."""
    if decoded <= 400_000:
        return 0.99
    if decoded >= 4_000_000:
        return 0.10
    return 0.99 - 0.89 * (decoded - 400_000) / 3_600_000


@dataclass(frozen=True)
class _Anchor:
    value: JSONValue  # a mapping's or sequence's value (shared by every alias)
    scalar: _Scalar | None  # a scalar's go-yaml reading, turned into a key or value at use
    size: int  # values decoded when it is expanded, go-yaml's count
    height: int  # levels of nesting it adds


class _Frame:
    """A mapping or sequence being built."""

    __slots__ = (
        "anchor",
        "explicit",
        "height",
        "key",
        "key_line",
        "mapping",
        "merge",
        "sequence",
        "size",
    )

    def __init__(
        self,
        mapping: dict[str, JSONValue] | None,
        sequence: list[JSONValue] | None,
        anchor: str | None,
    ) -> None:
        self.mapping = mapping
        self.sequence = sequence
        self.anchor = anchor
        self.explicit: dict[str, int] = {}  # keys written in this mapping -> their line
        self.key: str | None = None  # the key whose value comes next; None: a key comes next
        self.key_line = 0
        self.merge = False  # the value that comes next is merged (`<<`)
        self.size = 1
        self.height = 1


def _line(event: yaml.Event) -> int:
    return 0 if event.start_mark is None else event.start_mark.line + 1


class _Builder:
    """Builds the JSON-like values of one YAML stream, mirroring go-yaml v2 (module doc)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.stack: list[_Frame] = []
        self.anchors: dict[str, _Anchor] = {}
        self.open_anchors: dict[str, int] = {}
        self.decoded = 0
        self.aliased = 0

    def stream(self, parser: yaml.CSafeLoader | yaml.SafeLoader) -> list[tuple[int, JSONValue]]:
        """Every document of the stream: (the line it starts at, its value)."""
        documents = []
        while True:
            event = parser.get_event()
            if isinstance(event, yaml.DocumentStartEvent):
                documents.append((_line(event), self.document(parser)))
            elif event is None or isinstance(event, yaml.StreamEndEvent):
                return documents

    def document(self, parser: yaml.CSafeLoader | yaml.SafeLoader) -> JSONValue:
        # Anchors do not cross documents (nor do they in kubectl, which splits the stream).
        self.anchors, self.open_anchors = {}, {}
        self.decoded, self.aliased = 1, 0
        root = _Frame(None, [], None)
        self.stack = [root]
        while True:
            event = parser.get_event()
            if event is None:  # the parser ends every document it started; never reached
                raise ManifestError(f"{self.source}: the YAML stream ended inside a document")
            line = _line(event)
            try:
                if isinstance(event, yaml.ScalarEvent):
                    self.on_scalar(event, line)
                elif isinstance(event, yaml.AliasEvent):
                    self.on_alias(event.anchor or "", line)
                elif isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
                    self.on_start(isinstance(event, yaml.MappingStartEvent), event.anchor, line)
                elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                    self.on_end(line)
                elif isinstance(event, yaml.DocumentEndEvent):
                    assert root.sequence is not None
                    return root.sequence[0] if root.sequence else None
            except _Problem as problem:
                raise ManifestError(self.where(line, str(problem))) from None

    def where(self, line: int, message: str) -> str:
        """`message` located: file, line and the field path being read."""
        path = ""
        for frame in self.stack[1:]:
            if frame.sequence is not None:
                path += f"[{len(frame.sequence)}]"
            elif frame.key is not None and not frame.merge:
                path += f".{frame.key}" if path else frame.key
        if len(path) > 120:  # a path through a hundred levels says no more than its ends
            path = f"{path[:60]}...{path[-50:]}"
        return f"{self.source}, line {line}: {path + ': ' if path else ''}{message}"

    def on_scalar(self, event: yaml.ScalarEvent, line: int) -> None:
        frame = self.stack[-1]
        if frame.mapping is not None and frame.key is None:
            tag = event.tag
            if event.value == "<<" and (
                (tag is None and event.implicit[0]) or tag in ("!", _MERGE)
            ):
                # go-yaml does not decode a merge key, so it does not count.
                frame.key, frame.key_line, frame.merge = "<<", line, True
                return
            self.decoded += 1
            scalar = _scalar(event)
            self.set_key(frame, _json_key(scalar), line)
            if event.anchor is not None:
                self.define(event.anchor, _Anchor(None, scalar, 1, 0))
            return
        self.decoded += 1
        scalar = _scalar(event)
        if event.anchor is not None:
            self.define(event.anchor, _Anchor(None, scalar, 1, 0))
        self.add(frame, _json_value(scalar), 1, 0, line, from_alias=False)

    def on_alias(self, name: str, line: int) -> None:
        if name in self.open_anchors:
            raise _Problem(f"anchor {name!r} value contains itself")
        anchor = self.anchors.get(name)
        if anchor is None:
            raise _Problem(f"unknown anchor {name!r} referenced")
        self.decoded += 1 + anchor.size
        self.aliased += anchor.size
        if (
            self.aliased > 100
            and self.decoded > 1000
            and self.aliased / self.decoded > _allowed_alias_ratio(self.decoded)
        ):
            raise _Problem(
                "document contains excessive aliasing (as go-yaml, and so kubectl, says): "
                f"its anchors expand to {self.decoded:,} values"
            )
        frame = self.stack[-1]
        if frame.mapping is not None and frame.key is None:
            if anchor.scalar is None:
                raise _Problem(f"a mapping key must be a scalar; *{name} is not one")
            self.set_key(frame, _json_key(anchor.scalar), line)
            return
        if len(self.stack) - 1 + anchor.height > MAX_DEPTH:
            raise _Problem(f"nested more than {MAX_DEPTH} levels deep (through *{name})")
        value = anchor.value if anchor.scalar is None else _json_value(anchor.scalar)
        self.add(frame, value, 1 + anchor.size, anchor.height, line, from_alias=True)

    def on_start(self, is_mapping: bool, anchor: str | None, line: int) -> None:
        parent = self.stack[-1]
        if parent.mapping is not None and parent.key is None:
            raise _Problem(
                f"a mapping key must be a scalar, not a {'mapping' if is_mapping else 'sequence'}"
            )
        if len(self.stack) > MAX_DEPTH:
            raise _Problem(f"nested more than {MAX_DEPTH} levels deep")
        self.decoded += 1
        if anchor is not None:
            self.open_anchors[anchor] = line
        frame = _Frame({}, None, anchor) if is_mapping else _Frame(None, [], anchor)
        self.stack.append(frame)

    def on_end(self, line: int) -> None:
        frame = self.stack.pop()
        value: JSONValue = frame.mapping if frame.mapping is not None else frame.sequence
        if frame.anchor is not None:
            del self.open_anchors[frame.anchor]
            self.define(frame.anchor, _Anchor(value, None, frame.size, frame.height))
        self.add(self.stack[-1], value, frame.size, frame.height, line, from_alias=False)

    def define(self, name: str, anchor: _Anchor) -> None:
        self.anchors[name] = anchor  # a later anchor of the same name replaces it, as in YAML

    def set_key(self, frame: _Frame, key: str, line: int) -> None:
        first = frame.explicit.get(key)
        if first is not None:
            raise _Problem(f"duplicate key {key!r} (first at line {first})")
        frame.explicit[key] = line
        frame.key, frame.key_line = key, line
        frame.size += 1

    def add(
        self, frame: _Frame, value: JSONValue, size: int, height: int, line: int, from_alias: bool
    ) -> None:
        frame.size += size
        frame.height = max(frame.height, height + 1)
        if frame.sequence is not None:
            frame.sequence.append(value)
            return
        assert frame.mapping is not None and frame.key is not None
        if frame.merge:
            self.merge(frame.mapping, value, from_alias, frame.key_line)
            frame.merge = False
        else:
            frame.mapping[frame.key] = value
        frame.key = None

    def merge(
        self, mapping: dict[str, JSONValue], value: JSONValue, from_alias: bool, line: int
    ) -> None:
        """go-yaml v2's merge: a mapping, or an inline sequence of mappings (earlier ones win),
        whose entries are set at the `<<`, over what the mapping already holds."""
        if isinstance(value, dict):
            mapping.update(value)
        elif (
            isinstance(value, list)
            and not from_alias
            and all(isinstance(item, dict) for item in value)
        ):
            for item in reversed(value):
                assert isinstance(item, dict)
                mapping.update(item)
        else:
            raise _Problem(
                f"the merge key `<<` at line {line} needs a mapping or a sequence of mappings "
                "(`<<: *anchor` or `<<: [*a, *b]`)"
            )


# ---- Files --------------------------------------------------------------------------------


def _text(data: bytes, source: str) -> str:
    """The file's text: UTF-8 (a byte-order mark allowed), or UTF-16 with its mark, which are
    what go-yaml reads."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise ManifestError(f"{source} is not valid UTF-16 text") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        raise ManifestError(
            f"{source} is not UTF-8 text: byte 0x{data[error.start]:02x} at line {line}, "
            f"column {column} (save it as UTF-8)"
        ) from None


def _yaml_problem(source: str, error: yaml.YAMLError, text: str, c_parser: bool) -> str:
    """A parser error on one line: where it is and what the parser found."""
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        mark = error.problem_mark
        message = f"{source}, line {mark.line + 1}, column {mark.column + 1}: {error.problem}"
        if error.context and error.context_mark is not None:
            message += f" ({error.context} at line {error.context_mark.line + 1})"
        elif error.context:
            message += f" ({error.context})"
    elif isinstance(error, yaml.reader.ReaderError):
        # libyaml counts the offset in UTF-8 bytes, the Python reader in characters.
        if c_parser:
            before = text.encode()[: error.position].decode(errors="ignore")
        else:
            before = text[: error.position]
        line = before.count("\n") + 1
        column = len(before) - (before.rfind("\n") + 1) + 1
        character = (
            f"U+{error.character:04X}" if isinstance(error.character, int) else "a character"
        )
        message = f"{source}, line {line}, column {column}: {character}: {error.reason}"
    else:
        message = f"{source}: {error}"
    return " ".join(f"{message} (not valid YAML)".split())


def parse(
    data: bytes | str, source: str, *, c_parser: bool | None = None
) -> list[tuple[int, JSONValue]]:
    """Every document of a YAML stream as kubectl would send it: (first line, value), empty
    documents included (as None). `c_parser`: libyaml's parser (default: when available)."""
    text = data if isinstance(data, str) else _text(data, source)
    use_c = yaml.__with_libyaml__ if c_parser is None else c_parser
    parser: yaml.CSafeLoader | yaml.SafeLoader | None = None
    try:
        # The pure-Python reader checks every character as it is made: inside the try.
        parser = yaml.CSafeLoader(text) if use_c else yaml.SafeLoader(text)
        return _Builder(source).stream(parser)
    except yaml.YAMLError as error:
        raise ManifestError(_yaml_problem(source, error, text, use_c)) from None
    finally:
        if parser is not None:
            parser.dispose()


# ---- Documents and the sweeps among them ---------------------------------------------------


@dataclass(frozen=True)
class Document:
    """One object of a manifest file: a YAML document, or an item of a `kind: List` one."""

    index: int
    """Position of its YAML document in the file, from 1 (empty documents count)."""
    line: int
    """The line its YAML document starts at."""
    content: JSONValue
    """Its value, JSON-like; where the YAML used aliases, parts may be shared: read only."""
    item: int | None = None
    """Its position in the `items` of a List document, if it came from one."""

    @property
    def kind(self) -> str | None:
        kind = self.content.get("kind") if isinstance(self.content, dict) else None
        return kind if isinstance(kind, str) else None

    @property
    def name(self) -> str | None:
        metadata = self.content.get("metadata") if isinstance(self.content, dict) else None
        name = metadata.get("name") if isinstance(metadata, dict) else None
        return name if isinstance(name, str) else None

    @property
    def is_sweep(self) -> bool:
        """A BertSweep, or a mapping that names no kind (validating it says what is missing)."""
        return isinstance(self.content, dict) and self.kind in (SWEEP_KIND, None)

    def where(self) -> str:
        item = f" items[{self.item}]" if self.item is not None else ""
        return f"document {self.index} at line {self.line}{item}"

    def title(self) -> str:
        return f"{self.kind or 'an object'} {self.name or '(no name)'}"


@dataclass(frozen=True)
class Contents:
    """What a manifest file holds: its non-empty documents, List items in their place."""

    source: str
    documents: tuple[Document, ...]

    @property
    def sweeps(self) -> list[Document]:
        return [d for d in self.documents if d.is_sweep]

    def label(self, document: Document, message: str) -> str:
        """`message` about `document`, naming the document when the file holds several."""
        if len(self.documents) == 1:
            return message
        head = f"{document.where()}"
        if "\n" in message:
            return head + ":\n  " + message.replace("\n", "\n  ")
        return f"{head}: {message}"


def _objects(documents: Iterable[tuple[int, JSONValue]]) -> Iterable[Document]:
    for index, (line, content) in enumerate(documents, start=1):
        if content is None:
            continue  # kubectl skips empty documents and `null`
        items = content.get("items") if isinstance(content, dict) else None
        kind = content.get("kind") if isinstance(content, dict) else None
        if isinstance(kind, str) and kind.endswith("List") and isinstance(items, list):
            # kubectl applies each item of a List (`kubectl get ... -o yaml` writes one).
            for position, item in enumerate(items):
                yield Document(index, line, item, position)
        else:
            yield Document(index, line, content)


def load(data: bytes | str, source: str, *, c_parser: bool | None = None) -> Contents:
    """The objects of a manifest given as bytes (or text); ManifestError when it cannot be
    read as kubectl would read it."""
    return Contents(source, tuple(_objects(parse(data, source, c_parser=c_parser))))


def read(path: Path) -> Contents:
    """The objects of the manifest file at `path` (see `load`)."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_BYTES + 1)
    except OSError as error:
        raise ManifestError(f"cannot read {path}: {error.strerror or error}") from None
    if len(data) > MAX_BYTES:
        raise ManifestError(f"{path} is larger than {MAX_BYTES // 2**20} MiB: not a manifest")
    return load(data, str(path))


def check(contents: Contents, document: Document) -> BertSweepManifest:
    """Parse one BertSweep document, as the API server validates it; ManifestError naming
    the document (when the file holds several) and the field."""
    if not isinstance(document.content, dict):
        kind = "a list" if isinstance(document.content, list) else "a scalar"
        raise ManifestError(
            contents.label(document, f"a Kubernetes object must be a mapping, not {kind}")
        )
    try:
        return parse_manifest(document.content)
    except ManifestError as error:
        raise ManifestError(contents.label(document, str(error))) from None


@dataclass(frozen=True)
class Outcome:
    """What `validate` found of one object: a valid sweep, an invalid one, or another kind."""

    document: Document
    manifest: BertSweepManifest | None = None
    error: str | None = None

    @property
    def skipped(self) -> bool:
        return self.manifest is None and self.error is None


def validate(contents: Contents) -> list[Outcome]:
    """Check every BertSweep of the file, in order; other kinds are listed as skipped, and
    anything that is not a mapping is an error. ManifestError when it holds no BertSweep."""
    if not any(d.is_sweep or not isinstance(d.content, dict) for d in contents.documents):
        raise ManifestError(_no_sweep(contents))
    outcomes = []
    for document in contents.documents:
        if isinstance(document.content, dict) and not document.is_sweep:
            outcomes.append(Outcome(document))
            continue
        try:
            outcomes.append(Outcome(document, manifest=check(contents, document)))
        except ManifestError as error:
            outcomes.append(Outcome(document, error=str(error)))
    return outcomes


def _no_sweep(contents: Contents) -> str:
    others = ", ".join(d.title() for d in contents.documents)
    return f"{contents.source} holds no {SWEEP_KIND} document" + (
        f" (only {others})" if others else ""
    )


def _listing(documents: Iterable[Document]) -> str:
    return ", ".join(f"{d.name or '(no name)'} ({d.where()})" for d in documents)


def select(contents: Contents, name: str | None = None, prefer: str | None = None) -> Document:
    """The one BertSweep a command works on: the only one, or the one named `name`; with
    several and no `name`, the one named `prefer` if exactly one is. ManifestError saying
    which there are otherwise, and for a document that is not a mapping."""
    for document in contents.documents:
        if not isinstance(document.content, dict):
            check(contents, document)  # raises, naming it
    sweeps = contents.sweeps
    if not sweeps:
        raise ManifestError(_no_sweep(contents))
    if name is None and len(sweeps) == 1:
        return sweeps[0]
    wanted = name if name is not None else prefer
    chosen = [d for d in sweeps if d.name == wanted] if wanted is not None else []
    if len(chosen) == 1:
        return chosen[0]
    if name is None:
        raise ManifestError(
            f"{contents.source} holds {len(sweeps)} {SWEEP_KIND} documents, "
            f"{_listing(sweeps)}: choose one with --sweep NAME"
        )
    if not chosen:
        raise ManifestError(
            f"{contents.source} holds no {SWEEP_KIND} named {name!r}; it holds " + _listing(sweeps)
        )
    raise ManifestError(
        f"{contents.source} holds {len(chosen)} {SWEEP_KIND} documents named {name!r}: "
        + ", ".join(d.where() for d in chosen)
    )
