"""Load a YAML profile into its pydantic model, turning every failure into one readable paragraph.

A bad profile must stop the run before any instrument is touched, with a message naming the file,
the field path and what was expected.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from rig.profiles.types import SECRET_ERROR

ModelT = TypeVar("ModelT", bound=BaseModel)

MAX_PROFILE_BYTES = 1_000_000
"""A profile file larger than this (1 MB) is refused before it is read: real profiles are a few kB."""
MAX_NESTING = 64
"""Mappings and lists nested deeper than this (aliases expanded) are refused."""
MAX_VALUES = 200_000
"""A profile holding more values than this, aliases expanded (a "billion laughs" bomb), is refused."""
MAX_EXTENDS = 16
"""Longest chain of `extends:` files."""
_SHOWN_INPUT_CHARACTERS = 80


class StrictModel(BaseModel):
    """Base of every profile model: unknown keys are errors, floats are finite, values are checked on assignment
    too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False, allow_inf_nan=False)


class ProfileError(ValueError):
    """A profile file that cannot be used; the message names the file, the field and what was expected."""

    def __init__(self, path: Path | str, problems: list[str]):
        self.path = Path(path)
        self.problems = problems
        listing = "; ".join(problems)
        super().__init__(f"profile {self.path}: {listing}")


def _field_path(location: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in location:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "(top level)"


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN_INPUT_CHARACTERS else text[:_SHOWN_INPUT_CHARACTERS] + "..."


def describe_validation_error(error: ValidationError) -> list[str]:
    """One entry per problem: `field.path: what was expected (got: value)`."""
    problems = []
    for item in error.errors(include_url=False):
        where = _field_path(tuple(item["loc"]))
        kind = item["type"]
        if kind == "extra_forbidden":
            message = "unknown key (check its spelling and the profile documentation)"
        elif kind == "missing":
            message = "required field is missing"
        else:
            context_error = item.get("ctx", {}).get("error")
            message = str(context_error) if context_error is not None else item["msg"]
            shown = _shown(item.get("input"))
            if "input" in item and kind != SECRET_ERROR and not isinstance(item["input"], dict | list) \
                    and shown not in message:
                message += f" (got: {shown})"
        problems.append(f"field '{where}': {message}")
    return problems


class _ProfileYamlLoader(yaml.SafeLoader):
    """A safe YAML loader that bounds nesting, refuses a key given twice in one mapping (PyYAML keeps the last)
    and reports a value Python cannot build (a 5,000-digit number, the 45th of a month) at its line."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node:
        if self._depth >= MAX_NESTING:
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_NESTING} levels", mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: yaml.Node, deep: bool = False) -> object:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, TypeError, OverflowError) as error:
            raise yaml.constructor.ConstructorError(None, None, str(error), node.start_mark) from None

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                repeated = key in seen
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    None, None, "a key must be a plain value, not a list or mapping", key_node.start_mark
                ) from None
            if repeated:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in one mapping", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


class _YamlLimit(Exception):
    """A YAML document over one of the loader's limits."""


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [item for pair in node.value for item in pair]
    return []


def _check_size(node: yaml.Node, depth: int, measured: dict[int, tuple[int, int] | None]) -> int:
    """The number of values under `node` with aliases expanded; refuses a bomb, a cycle or too deep a nesting."""
    where = f"line {node.start_mark.line + 1}, column {node.start_mark.column + 1}: "
    if depth > MAX_NESTING:
        raise _YamlLimit(f"{where}nested deeper than {MAX_NESTING} levels (aliases expanded)")
    if id(node) in measured:
        known = measured[id(node)]
        if known is None:
            raise _YamlLimit(f"{where}an alias refers to the list or mapping that contains it")
        if depth + known[1] > MAX_NESTING:
            raise _YamlLimit(f"{where}nested deeper than {MAX_NESTING} levels (aliases expanded)")
        return known[0]
    measured[id(node)] = None
    size, height = 1, 0
    for child in _children(node):
        size += _check_size(child, depth + 1, measured)
        height = max(height, 1 + measured[id(child)][1])
        if size > MAX_VALUES:
            raise _YamlLimit(f"{where}holds more than {MAX_VALUES} values (aliases expanded)")
    measured[id(node)] = (size, height)
    return size


def _read_text(path: Path) -> str:
    try:
        status = path.stat()
    except FileNotFoundError:
        raise ProfileError(path, ["file not found"]) from None
    except OSError as error:
        raise ProfileError(path, [f"cannot be read: {error.strerror}"]) from None
    if stat.S_ISDIR(status.st_mode):
        raise ProfileError(path, ["is a directory, not a profile file"])
    if not stat.S_ISREG(status.st_mode):
        raise ProfileError(path, ["is not a regular file"])
    if status.st_size > MAX_PROFILE_BYTES:
        raise ProfileError(path, [f"is {status.st_size} bytes, over the {MAX_PROFILE_BYTES} bytes limit of a profile"])
    try:
        with path.open("rb") as file:
            data = file.read(MAX_PROFILE_BYTES + 1)
    except OSError as error:
        raise ProfileError(path, [f"cannot be read: {error.strerror}"]) from None
    if len(data) > MAX_PROFILE_BYTES:
        raise ProfileError(path, [f"is over the {MAX_PROFILE_BYTES} bytes limit of a profile"])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise ProfileError(path, [f"is not UTF-8 text: byte 0x{data[error.start]:02x} on line {line}"]) from None


def read_yaml(path: Path | str) -> object:
    """Parse a YAML profile within the limits above, reporting any problem with the file and line."""
    path = Path(path)
    text = _read_text(path)
    try:
        loader = _ProfileYamlLoader(text)
    except yaml.reader.ReaderError as error:
        line = text[: error.position].count("\n") + 1
        raise ProfileError(path, [f"is not valid YAML: line {line}: control character #x{error.character:04x} "
                                  "is not allowed"]) from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_size(node, 1, {})
        return loader.construct_document(node)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ProfileError(path, [f"is not valid YAML: {where}{problem}"]) from None
    except _YamlLimit as error:
        raise ProfileError(path, [f"is refused: {error}"]) from None
    finally:
        loader.dispose()


def deep_merge(base: dict, overrides: dict) -> dict:
    """`overrides` on top of `base`: mappings merge key by key, anything else replaces."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_profile(path: Path | str, seen: tuple[Path, ...] = ()) -> dict:
    """A profile's mapping, with `extends: <file>` (relative to this file) merged underneath it."""
    path = Path(path)
    data = read_yaml(path)
    if data is None:
        raise ProfileError(path, ["the file is empty"])
    if not isinstance(data, dict):
        raise ProfileError(path, [f"expected a mapping of keys at the top level, got {type(data).__name__}"])
    base_name = data.pop("extends", None)
    if base_name is None:
        return data
    if not isinstance(base_name, str):
        raise ProfileError(path, [f"field 'extends': expected a file name, got {base_name!r}"])
    base_path = (path.parent / base_name).resolve()
    if len(seen) >= MAX_EXTENDS:
        raise ProfileError(path, [f"field 'extends': more than {MAX_EXTENDS} files extend one another"])
    if base_path in seen:
        raise ProfileError(path, [f"field 'extends': {base_name} extends itself in a loop"])
    if not base_path.is_file():
        raise ProfileError(path, [f"field 'extends': {base_path} does not exist"])
    return deep_merge(read_profile(base_path, (*seen, path.resolve())), data)


def load_model(path: Path | str, model: type[ModelT], secrets_optional: bool = False) -> ModelT:
    """Read `path` (and what it extends) and validate it as `model`, or raise ProfileError naming every bad field.

    `secrets_optional`: a secret whose environment variable is not set holds a placeholder instead of being an
    error (for what never uses a secret, such as rebuilding a run's report in another shell).
    """
    data = read_profile(path)
    try:
        return model.model_validate(data, context={"secrets_optional": secrets_optional})
    except ValidationError as error:
        raise ProfileError(path, describe_validation_error(error)) from None
