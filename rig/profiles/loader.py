"""Load a YAML profile into its pydantic model, turning every failure into one readable paragraph.

A bad profile must stop the run before any instrument is touched, with a message naming the file,
the field path and what was expected.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

ModelT = TypeVar("ModelT", bound=BaseModel)


class StrictModel(BaseModel):
    """Base of every profile model: unknown keys are errors, values are checked on assignment too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


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
            if "input" in item and not isinstance(item["input"], dict | list):
                message += f" (got: {item['input']!r})"
        problems.append(f"field '{where}': {message}")
    return problems


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses a key given twice in one mapping (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in one mapping", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path | str) -> object:
    """Parse a YAML file, reporting syntax errors with the file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProfileError(path, ["file not found"]) from None
    except OSError as error:
        raise ProfileError(path, [f"cannot be read: {error.strerror}"]) from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ProfileError(path, [f"is not valid YAML: {where}{problem}"]) from None


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
    if base_path in seen:
        raise ProfileError(path, [f"field 'extends': {base_name} extends itself in a loop"])
    if not base_path.is_file():
        raise ProfileError(path, [f"field 'extends': {base_path} does not exist"])
    return deep_merge(read_profile(base_path, (*seen, path.resolve())), data)


def load_model(path: Path | str, model: type[ModelT]) -> ModelT:
    """Read `path` (and what it extends) and validate it as `model`, or raise ProfileError naming every bad field."""
    data = read_profile(path)
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise ProfileError(path, describe_validation_error(error)) from None
