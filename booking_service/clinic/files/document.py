"""Reading a clinic file: YAML with the line of every value, then the JSON Schema of its shape.

The YAML is read by PyYAML's safe loader with YAML 1.2's plain scalars (``17:00`` stays text,
not the sexagesimal number 1020; ``no`` and ``on`` stay text, only ``true`` and ``false`` are
booleans), and a mapping that repeats a key is refused rather than keeping the last value.
Every problem found is a :class:`Problem` naming the field by its path
(``services[2].duration_minutes``) and its line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import yaml

from booking_service.clinic.files.schema import SCHEMA

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a clinic file: where (path, line) and what (English words)."""

    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = self.path or "the file"
        return f"{where} (line {self.line}): {self.message}" if self.line else f"{where}: {self.message}"


class ClinicFileError(Exception):
    """A clinic file that cannot be loaded: every problem found, nothing changed.

    ``problems`` are worded here (the file's shape and references); ``domain_error`` is the
    domain's refusal of one item (a :class:`~booking_service.errors.DomainError`, worded by the
    surface): ``where`` is the item (its path and line; ``message`` its key, if it has one) and
    ``domain_fields`` maps each of the error's field names to the file's path and line.
    """

    def __init__(
        self,
        problems: list[Problem] | None = None,
        *,
        domain_error: Exception | None = None,
        where: Problem | None = None,
        domain_fields: Mapping[str, tuple[str, int | None]] | None = None,
    ) -> None:
        self.problems = list(problems or [])
        self.domain_error = domain_error
        self.where = where
        self.domain_fields = dict(domain_fields or {})
        super().__init__("; ".join(map(str, self.problems)) or str(domain_error))


@dataclass
class Document:
    """A clinic file read and checked against the schema: its values and where each one is."""

    data: dict[str, Any]
    lines: dict[Path, int] = field(default_factory=dict)

    def line(self, path: Path) -> int | None:
        """The line of the value at ``path``, or of its nearest enclosing value."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get(())

    def problem(self, path: Path, message: str) -> Problem:
        return Problem(render_path(path), self.line(path), message)


def render_path(path: Path) -> str:
    """``("services", 2, "duration_minutes")`` -> ``services[2].duration_minutes``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


# --- YAML ------------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """The safe loader with YAML 1.2's core scalars (see the module's docstring)."""


# YAML 1.1's booleans, numbers and timestamps out (dates stay text, read by the loader); YAML
# 1.2's core booleans and numbers in.
_REPLACED = {f"tag:yaml.org,2002:{name}" for name in ("bool", "int", "float", "timestamp")}
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _REPLACED]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _walk(node: yaml.Node, path: Path, lines: dict[Path, int], problems: list[Problem], line: int = 0) -> None:
    """Record the line of every value under ``node`` (a mapping's value: the line of its key,
    where a block below starts); a repeated mapping key is a problem."""
    lines[path] = line or _line(node)
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                problems.append(
                    Problem(render_path((*path, key)), _line(key_node), f"appears twice (first on line {seen[key]})")
                )
                continue
            seen[key] = _line(key_node)
            _walk(value_node, (*path, key), lines, problems, _line(key_node))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), lines, problems)


def parse_yaml(text: str) -> tuple[Any, dict[Path, int]]:
    """The values of a YAML text and the line of each (by path). Raises ClinicFileError for a
    syntax error, several documents or a repeated key."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        problems: list[Problem] = []
        lines: dict[Path, int] = {}
        _walk(node, (), lines, problems)
        if problems:
            raise ClinicFileError(problems)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = exc.problem or exc.context or "cannot be read"
        if exc.context and exc.problem:
            started = f" started on line {exc.context_mark.line + 1}" if exc.context_mark else ""
            what += f" ({exc.context}{started})"
        raise ClinicFileError([Problem("", mark.line + 1 if mark else None, f"not valid YAML: {what}")]) from None
    except yaml.YAMLError as exc:
        raise ClinicFileError([Problem("", None, f"not valid YAML: {exc}")]) from None
    finally:
        loader.dispose()
    return data, lines


# --- the schema --------------------------------------------------------------------------------------

# JSON's integer, without Python's floats that happen to be whole (45.0 is not a duration).
_TYPES = jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
    "integer", lambda _checker, value: isinstance(value, int) and not isinstance(value, bool)
)
_Validator = jsonschema.validators.extend(jsonschema.Draft202012Validator, type_checker=_TYPES)
_VALIDATOR = _Validator(SCHEMA)

_TYPE_WORDS = {
    "string": "text",
    "integer": "a whole number",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping of fields",
    "null": "empty",
}


def _words(error: jsonschema.ValidationError) -> list[tuple[Path, str]]:
    """Where an error of the schema is (paths into the document) and what to fix, in words."""
    path: Path = tuple(error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "required":
        missing = [name for name in error.validator_value if name not in error.instance]
        return [((*path, name), "is missing (required)") for name in missing]
    if error.validator == "additionalProperties":
        known = schema.get("properties", {})
        allowed = ", ".join(known)
        return [
            ((*path, name), f"is not a field here (expected one of: {allowed})")
            for name in error.instance
            if name not in known
        ]
    if error.validator == "minItems" and error.validator_value == 1:
        return [(path, "must list at least one")]
    if error.validator == "uniqueItems":
        return [(path, "lists the same value twice")]
    if "description" in schema:
        return [(path, f"must be {schema['description']}")]
    if error.validator == "type":
        expected = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        return [(path, "must be " + " or ".join(_TYPE_WORDS.get(t, t) for t in expected))]
    if error.validator == "enum":
        return [(path, "must be one of: " + ", ".join(map(str, error.validator_value)))]
    return [(path, error.message)]


def _errors(data: Any) -> Iterator[jsonschema.ValidationError]:
    """Every schema error, the deepest of each branch (a wrong field, not its whole item)."""
    for error in _VALIDATOR.iter_errors(data):
        if error.context and not (isinstance(error.schema, dict) and "description" in error.schema):
            # oneOf/anyOf without words of its own: the alternative that got furthest says what to fix.
            yield max(error.context, key=lambda e: len(e.absolute_path))
        else:
            yield error


def read_document(text: str) -> Document:
    """Parse and check a clinic file. Raises ClinicFileError naming every problem of shape."""
    data, lines = parse_yaml(text)
    document = Document(data if isinstance(data, dict) else {}, lines)
    if data is None:
        raise ClinicFileError([Problem("", None, "is empty: expected clinic, locations, services, practitioners")])
    problems = []
    for error in sorted(_errors(data), key=lambda e: [str(p) for p in e.absolute_path]):
        problems.extend(document.problem(path, message) for path, message in _words(error))
    if problems:
        problems.sort(key=lambda p: (p.line or 0, p.path))
        raise ClinicFileError(_unique(problems))
    return document


def _unique(problems: list[Problem]) -> list[Problem]:
    seen: set[Problem] = set()
    return [p for p in problems if not (p in seen or seen.add(p))]
