"""Read the channel's XML documents (reference §1.6) into the same shape as their JSON form,
so the sandbox imports XML and JSON CustomerReturnImport alike."""

from __future__ import annotations

from typing import Any

from lxml import etree

# Elements that hold a list (their children are the entries, whatever they are called).
LIST_CONTAINERS = frozenset({"Returns", "ReturnedItems", "ExchangeItems", "Mapping",
                             "ExtendedDescription", "AlternateMapping", "DiscountCodes",
                             "Orders", "Items", "Payments"})
# Elements that XML repeats once per value (JSON arrays of strings).
REPEATED_VALUES = frozenset({"MatchAddressOn", "MatchContactOn", "MatchCompanyOn"})


def _convert(el: etree._Element) -> Any:
    children = [c for c in el if isinstance(c.tag, str)]
    text = (el.text or "").strip()
    if el.tag in LIST_CONTAINERS and (children or not text):
        return [_convert(c) for c in children]
    if not children:
        if el.attrib:
            out: dict[str, Any] = {str(k): str(v) for k, v in el.attrib.items()}
            if text:
                out["Name"] = text
            return out
        return text
    result: dict[str, Any] = {str(k): str(v) for k, v in el.attrib.items()}
    for child in children:
        value = _convert(child)
        if child.tag in REPEATED_VALUES:
            result.setdefault(child.tag, []).append(value)
        elif child.tag in result:
            existing = result[child.tag]
            result[child.tag] = [*existing, value] if isinstance(existing, list) else [
                existing, value]
        else:
            result[child.tag] = value
    return result


def xml_to_document(body: bytes) -> dict[str, Any]:
    """``<CustomerReturnImport>…`` (or any channel document) as a JSON-shaped dict."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    root = etree.fromstring(body, parser)
    converted = _convert(root)
    if not isinstance(converted, dict):
        return {}
    return converted
