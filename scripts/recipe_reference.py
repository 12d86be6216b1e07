"""Write docs/recipes.md, the recipe reference, from the schema's own field descriptions.

    .venv/bin/python scripts/recipe_reference.py          # rewrite docs/recipes.md
    .venv/bin/python scripts/recipe_reference.py --check  # exit 1 if it is out of date

tests/test_docs.py runs the check, so the reference never drifts from `epx/recipe.py`.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import sys
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

REPO = Path(__file__).resolve().parents[1]
TARGET = REPO / "docs" / "recipes.md"

HEADER = """# Recipe reference

Generated from the schema (`epx/recipe.py`) by `scripts/recipe_reference.py`; a test keeps it in
sync. A recipe is one YAML file with the sections below; every key is optional except
`model.name_or_path`. `--set section.key=value` overrides a key from the command line (typed as
YAML), and `epx train RECIPE --dry-run` prints the resolved recipe. An unknown key is an error
naming the nearest valid ones.

Step counts (`grpo.max_steps`, `grpo.save_steps`, `eval.every_n_steps`, `analysis.every_n_steps`,
`shaping.position.window`, the `stage` windows) are TRL's optimizer steps (global steps). The
stage detector takes one point per optimizer step (`docs/method.md`).
"""


def type_text(annotation: Any) -> str:
    """A readable type: `none | ppl | position | both`, `float or null`, `[float, float]`."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return " \\| ".join(str(a) for a in args)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        parts = [type_text(a) for a in args if a is not type(None)]
        return " or ".join(parts) + (" or null" if type(None) in args else "")
    if origin is tuple:
        return "[" + ", ".join(type_text(a) for a in args) + "]"
    if origin is list:
        return f"list of {type_text(args[0])}" if args else "list"
    if origin is dict:
        return "mapping"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "section"
    if dataclasses.is_dataclass(annotation):
        return "section"
    return getattr(annotation, "__name__", str(annotation))


def default_text(value: Any) -> str:
    if value is PydanticUndefined or value is dataclasses.MISSING:
        return "(required)"
    if dataclasses.is_dataclass(value):
        return "(see below)"
    if value == "":
        return '`""`'
    if isinstance(value, BaseModel | list | dict) and not value:
        return "`[]`" if isinstance(value, list) else "(see below)" if isinstance(value, BaseModel) else "`{}`"
    if isinstance(value, BaseModel):
        return "(see below)"
    if isinstance(value, str) and "\n" in value:
        return "(multi-line text)"
    return f"`{value!r}`" if not isinstance(value, str) else f"`{value}`"


def dataclass_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of a dataclass (the string literal after its line)."""
    tree = ast.parse(inspect.getsource(cls))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs = {}
    for node, after in zip(body, [*body[1:], None], strict=True):
        if isinstance(node, ast.AnnAssign) and isinstance(after, ast.Expr):
            value = getattr(after, "value", None)
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                docs[node.target.id] = " ".join(value.value.split())  # type: ignore[union-attr]
    return docs


def rows_of(model: Any, prefix: str) -> tuple[list[str], list[tuple[str, Any]]]:
    """Table rows of one section, and its nested sections (prefix, model) to write after it."""
    rows, nested = [], []
    if dataclasses.is_dataclass(model):
        docs = dataclass_docs(model)
        for field in dataclasses.fields(model):
            rows.append(f"| `{prefix}{field.name}` | {type_text(field.type)} | "
                        f"{default_text(field.default)} | {docs.get(field.name, '')} |")  # fmt: skip
        return rows, nested
    for name, field in model.model_fields.items():
        if prefix == "" and name == "source":
            continue  # set by the loader, not written in a recipe
        annotation = field.annotation
        inner = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
        section = next((a for a in inner if isinstance(a, type) and (issubclass(a, BaseModel)
                        or dataclasses.is_dataclass(a))), None)  # fmt: skip
        default = field.default
        if field.default_factory is not None:
            default = field.default_factory()
        description = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{prefix}{name}` | {type_text(annotation)} | {default_text(default)} | "
                    f"{description} |")  # fmt: skip
        if section is not None:
            nested.append((f"{prefix}{name}.", section))
    return rows, nested


def reference() -> str:
    from epx.grpo_args import CPU_DEFAULTS, EPX_DEFAULTS
    from epx.recipe import Recipe

    parts = [HEADER]
    top_rows, sections = rows_of(Recipe, "")
    parts += ["## Top level", "", "| key | type | default | what |", "|---|---|---|---|",
              *top_rows, ""]  # fmt: skip
    while sections:
        prefix, model = sections.pop(0)
        rows, nested = rows_of(model, prefix)
        sections = nested + sections
        parts += [f"## `{prefix.rstrip('.')}`", "", "| key | type | default | what |",
                  "|---|---|---|---|", *rows, ""]  # fmt: skip
    parts += [
        "## `grpo`", "",
        "TRL `GRPOConfig` fields under their own names and types (checked against the installed "
        "TRL's fields; an unknown one is an error with the nearest names). Where the recipe says "
        "nothing, epx sets:", "",
        *[f"- `{key}: {value!r}`" for key, value in EPX_DEFAULTS.items()],
        "", "and on a machine without a GPU also:", "",
        *[f"- `{key}: {value!r}`" for key, value in CPU_DEFAULTS.items()],
        "", "Everything else is TRL's default.", "",
    ]  # fmt: skip
    return "\n".join(parts)


def main() -> int:
    text = reference()
    if "--check" in sys.argv:
        if not TARGET.is_file() or TARGET.read_text() != text:
            print(f"{TARGET} is out of date: run python scripts/recipe_reference.py")
            return 1
        return 0
    TARGET.parent.mkdir(exist_ok=True)
    TARGET.write_text(text)
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
