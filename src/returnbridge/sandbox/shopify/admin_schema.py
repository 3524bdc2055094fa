"""The Shopify Admin GraphQL schema returnbridge is checked against (API version 2026-04).

``schema/admin-schema-airbyte-2.4.24.graphql.gz`` is the Admin schema of the 2023-07/2024-04
era as SDL; ``schema/additions-2026-04.graphql`` adds, with provenance, what the pinned
version has and that SDL lacks (``@idempotent``, ``storeCreditAccountCredit``). See
``schema/README.md``.

:func:`validation_errors` validates one document the way Shopify does before running it and
answers with Shopify-shaped errors (``message``, ``locations``, ``path``,
``extensions.code``): Shopify runs graphql-ruby, so the common messages are rewritten into
its wording (``Field 'code' doesn't exist on type 'UserError'``, code ``undefinedField``).
"""

from __future__ import annotations

import gzip
import re
from functools import cache
from pathlib import Path
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    build_schema,
    parse,
    validate,
)

API_VERSION = "2026-04"
SCHEMA_DIR = Path(__file__).parent / "schema"
BASE_SDL = SCHEMA_DIR / "admin-schema-airbyte-2.4.24.graphql.gz"
ADDITIONS_SDL = SCHEMA_DIR / "additions-2026-04.graphql"


@cache
def admin_schema() -> GraphQLSchema:
    """The extract for :data:`API_VERSION` (built once per process)."""
    base = gzip.decompress(BASE_SDL.read_bytes()).decode("utf-8")
    return build_schema(base + "\n" + ADDITIONS_SDL.read_text(encoding="utf-8"))


def _paths(document: DocumentNode) -> dict[int, list[str]]:
    """``id(field node) -> path`` as graphql-ruby reports it (``["mutation R", "f", ...]``)."""
    found: dict[int, list[str]] = {}

    def walk(selections: SelectionSetNode | None, prefix: list[str]) -> None:
        for sel in (selections.selections if selections else ()):
            if isinstance(sel, FieldNode):
                path = [*prefix, sel.name.value]
                found[id(sel)] = path
                walk(sel.selection_set, path)
            elif isinstance(sel, InlineFragmentNode):
                walk(sel.selection_set, prefix)

    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            label = definition.operation.value
            if definition.name:
                label = f"{label} {definition.name.value}"
            walk(definition.selection_set, [label])
        elif isinstance(definition, FragmentDefinitionNode):
            walk(definition.selection_set, [f"fragment {definition.name.value}"])
    return found


_RULES: list[tuple[re.Pattern[str], str, Any]] = [
    (re.compile(r"Cannot query field '(?P<f>\w+)' on type '(?P<t>\w+)'"),
     "Field '{f}' doesn't exist on type '{t}'",
     lambda m: {"code": "undefinedField", "typeName": m["t"], "fieldName": m["f"]}),
    (re.compile(r"Unknown directive '@(?P<d>\w+)'"),
     "Directive @{d} is not defined",
     lambda m: {"code": "undefinedDirective", "directiveName": m["d"]}),
    (re.compile(r"Unknown argument '(?P<a>\w+)' on field '(?P<t>\w+)\.(?P<f>\w+)'"),
     "Field '{f}' doesn't accept argument '{a}'",
     lambda m: {"code": "argumentNotAccepted", "name": m["f"], "typeName": "Field",
                "argumentName": m["a"]}),
    (re.compile(r"Argument '(?P<t>\w+)\.(?P<f>\w+)\((?P<a>\w+):\)' of type .* is required"),
     "Field '{f}' is missing required arguments: {a}",
     lambda m: {"code": "missingRequiredArguments", "className": "Field", "name": m["f"],
                "arguments": m["a"]}),
    (re.compile(r"Field '(?P<f>\w+)' argument '(?P<a>\w+)' of type .* is required"),
     "Field '{f}' is missing required arguments: {a}",
     lambda m: {"code": "missingRequiredArguments", "className": "Field", "name": m["f"],
                "arguments": m["a"]}),
    (re.compile(r"Variable '\$(?P<v>\w+)' is never used"),
     "Variable ${v} is declared but not used",
     lambda m: {"code": "variableNotUsed", "variableName": m["v"]}),
    (re.compile(r"Variable '\$(?P<v>\w+)' is not defined"),
     "Variable ${v} is used but not declared",
     lambda m: {"code": "variableNotDefined", "variableName": m["v"]}),
]


def _shopify_error(error: GraphQLError, paths: dict[int, list[str]]) -> dict[str, Any]:
    message, extensions = error.message, {"code": "validationError"}
    for pattern, template, ext in _RULES:
        match = pattern.search(error.message)
        if match:
            message, extensions = template.format(**match.groupdict()), ext(match)
            break
    out: dict[str, Any] = {"message": message}
    if error.locations:
        out["locations"] = [{"line": loc.line, "column": loc.column} for loc in error.locations]
    path = next((paths[id(n)] for n in error.nodes or () if id(n) in paths), None)
    if path:
        out["path"] = path
    out["extensions"] = extensions
    return out


def validation_errors(query: str) -> list[dict[str, Any]]:
    """Shopify-shaped errors for ``query`` against the extract; ``[]`` when it is valid."""
    try:
        document = parse(query)
    except GraphQLError as exc:
        out: dict[str, Any] = {"message": f"Parse error: {exc.message}"}
        if exc.locations:
            out["locations"] = [{"line": loc.line, "column": loc.column}
                                for loc in exc.locations]
        out["extensions"] = {"code": "parseError"}
        return [out]
    errors = validate(admin_schema(), document)
    if not errors:
        return []
    paths = _paths(document)
    return [_shopify_error(e, paths) for e in errors]
