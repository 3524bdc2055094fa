"""Schemas of the documented Khaos shapes, and a validator for the JSON Schema subset they use.

``jsonschema`` is not a dependency of this project; the subset below (type, required,
properties, additionalProperties: false, items, enum, min/maxLength, pattern, minimum,
exclusiveMinimum, min/maxProperties, local $ref) is all the schemas need. A JSON null
never satisfies any type used here, so a null anywhere fails validation.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from lxml import etree

SCHEMAS = Path(__file__).parent / "schemas"

_TYPES: dict[str, Any] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
}


@cache
def json_schema(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    return data


@cache
def xml_schema(name: str) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(SCHEMAS / f"{name}.xsd")))


def errors(instance: Any, schema: dict[str, Any], root: dict[str, Any] | None = None,
           path: str = "$") -> list[str]:
    root = root or schema
    if "$ref" in schema:
        target: Any = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        return errors(instance, target, root, path)
    found: list[str] = []
    if instance is None:
        return [f"{path}: null"]
    kind = schema.get("type")
    if kind and not _TYPES[kind](instance):
        return [f"{path}: expected {kind}, got {type(instance).__name__}"]
    if "enum" in schema and instance not in schema["enum"]:
        found.append(f"{path}: {instance!r} not one of {schema['enum']}")
    if isinstance(instance, str):
        if len(instance) < schema.get("minLength", 0):
            found.append(f"{path}: shorter than {schema['minLength']}")
        if "maxLength" in schema and len(instance) > schema["maxLength"]:
            found.append(f"{path}: longer than {schema['maxLength']}")
        if "pattern" in schema and not re.search(schema["pattern"], instance):
            found.append(f"{path}: {instance!r} does not match {schema['pattern']}")
    if _TYPES["number"](instance):
        if "minimum" in schema and instance < schema["minimum"]:
            found.append(f"{path}: below {schema['minimum']}")
        if "exclusiveMinimum" in schema and instance <= schema["exclusiveMinimum"]:
            found.append(f"{path}: not above {schema['exclusiveMinimum']}")
    if isinstance(instance, dict):
        for key in schema.get("required", []):
            if key not in instance:
                found.append(f"{path}: {key} is required")
        if len(instance) < schema.get("minProperties", 0):
            found.append(f"{path}: fewer than {schema['minProperties']} properties")
        if "maxProperties" in schema and len(instance) > schema["maxProperties"]:
            found.append(f"{path}: more than {schema['maxProperties']} properties")
        props = schema.get("properties", {})
        for key, value in instance.items():
            if key in props:
                found += errors(value, props[key], root, f"{path}.{key}")
            elif schema.get("additionalProperties") is False:
                found.append(f"{path}: unexpected property {key}")
    if isinstance(instance, list) and "items" in schema:
        for i, item in enumerate(instance):
            found += errors(item, schema["items"], root, f"{path}[{i}]")
    return found


def assert_json_valid(instance: Any, name: str) -> None:
    problems = errors(instance, json_schema(name))
    assert not problems, "\n".join(problems[:20])


def assert_xml_valid(body: bytes, name: str) -> etree._Element:
    doc = etree.fromstring(body)
    schema = xml_schema(name)
    if not schema.validate(doc):
        raise AssertionError("\n".join(str(e) for e in list(schema.error_log)[:20]))
    return doc
