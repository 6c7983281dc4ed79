"""Command-line flags made from a pydantic config model, so an option is written once: a field.

Each field `some_name` becomes `--some-name` with the field's type and its description as
help. Every flag defaults to None, meaning "not given", so that a config file and the model's
own defaults apply underneath: `given_values` returns only the flags that were typed.

The field's type decides the flag's form:
- int, float, str, Path (or `X | None`): one value of that type;
- Literal[...]: one of its values;
- bool: `--name` when the default is False, `--no-name` when it is True;
- tuple[X, X]: that many values (`--domains horse zebra`);
- tuple[X, ...]: a comma list (`--diffaugment color,cutout`).
Pydantic checks the values afterwards, with the model's own bounds and messages.
"""

from __future__ import annotations

import argparse
import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo, PydanticUndefined

SIMPLE_TYPES = (int, float, str, Path)


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def comma_list(text: str) -> tuple[str, ...]:
    """`a,b,,c` -> ("a", "b", "c"); an empty text is the empty list."""
    return tuple(part for part in text.split(",") if part)


def without_none(annotation: Any) -> Any:
    """X for `X | None` (or Optional[X]); the annotation itself otherwise."""
    if get_origin(annotation) in (Union, types.UnionType):
        kinds = [kind for kind in get_args(annotation) if kind is not type(None)]
        if len(kinds) == 1:
            return kinds[0]
    return annotation


def flag_options(name: str, field: FieldInfo) -> dict[str, Any]:
    """The keyword arguments of `add_argument` for one field (without help)."""
    annotation = without_none(field.annotation)
    origin, args = get_origin(annotation), get_args(annotation)
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    options: dict[str, Any] = {"dest": name, "default": None}  # dest: --no-flip sets flip
    if isinstance(extra.get("metavar"), str | list):  # a list names each of nargs values
        metavar = extra["metavar"]
        options["metavar"] = tuple(metavar) if isinstance(metavar, list) else metavar
    if annotation is bool:
        options.update(action="store_const", const=not field.default)
    elif annotation in SIMPLE_TYPES:
        options["type"] = annotation
    elif origin is Literal:
        options["choices"] = list(args)
    elif origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        options.setdefault("metavar", "LIST")
        options["type"] = comma_list
    elif origin is tuple and args and args[0] in SIMPLE_TYPES:
        options.update(nargs=len(args), type=args[0])
    else:
        raise TypeError(f"{name}: no command-line form for a field of type {annotation}")
    return options


def add_model_flags(
    parser: argparse.ArgumentParser,
    model: type[BaseModel],
    required: tuple[str, ...] = (),
) -> None:
    """A flag per field of `model`; the fields named in `required` must be given."""
    for name, field in model.model_fields.items():
        options = flag_options(name, field)
        if options.get("const") is False:  # a bool that is on by default
            flag, help_text = flag_name(f"no_{name}"), f"turns off: {field.description or name}"
        else:
            flag, help_text = flag_name(name), _help(field)
        parser.add_argument(flag, required=name in required, help=help_text, **options)


def _help(field: FieldInfo) -> str | None:
    """The field's description, and its default where it has one worth saying."""
    text = field.description or ""
    if field.annotation is not bool and field.default not in (None, (), "", PydanticUndefined):
        default = field.default
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        text = f"{text} (default: {shown})" if text else f"default: {shown}"
    return text.replace("%", "%%") or None


def given_values(args: argparse.Namespace, model: type[BaseModel]) -> dict[str, Any]:
    """The fields of `model` given on the command line, by field name."""
    return {
        name: getattr(args, name)
        for name in model.model_fields
        if getattr(args, name, None) is not None
    }
