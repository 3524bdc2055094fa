"""The XML side of the Khaos channel contract (reference §1.3-1.6).

Khaos documents are the JSON documents spelled as XML: arrays become a wrapper element with one
child per entry (``Returns/CustomerReturn``, ``ReturnedItems/ReturnedItem``,
``Mapping/ItemMapping``), a DataItem becomes attributes (``<ReturnReason ID="6"/>``, its Name as
text), string lists in ``Config`` repeat the element (``<MatchAddressOn>``), and properties
keep the documented order. Nothing is ever written for a missing value (Khaos fails on null).

Reading goes the other way for what Khaos pushes to us: any element with repeated children,
or one of the known array properties, becomes a list; attributes become a DataItem dict.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from lxml import etree

# Array property -> element name of one entry.
_ARRAY_ENTRY = {
    "Returns": "CustomerReturn",
    "ReturnedItems": "ReturnedItem",
    "ExchangeItems": "ExchangeItem",
    "Mapping": "ItemMapping",
    "ExtendedDescription": "string",
}
# String lists written as the same element repeated.
_REPEATED = frozenset({"MatchAddressOn", "MatchContactOn", "MatchCompanyOn"})
# DataItem properties written as attributes.
_DATA_ITEMS = frozenset({"Country", "ReturnReason", "Brand", "SalesSource", "Courier", "TaxRate",
                         "Site", "Currency", "CompanyClass"})
# Documented property order per element (others follow in the order given).
_ORDER: dict[str, tuple[str, ...]] = {
    "CustomerReturnImport": ("Returns", "ApiVersion", "Config"),
    "InvoiceAddress": ("Line1", "Line2", "Line3", "Town", "County", "Postcode", "Country",
                       "Email", "Telephone", "Fax", "Organisation", "ShowCompanyName"),
    "InvoiceContact": ("Title", "Forename", "Surname", "Email", "Mobile", "DateOfBirth",
                       "OptInNewsletter"),
    "ReturnedItem": ("SKU", "Mapping", "Quantity", "ReturnReason", "ExtendedDescription",
                     "SourceReturnReference", "UnitPrice"),
    "ExchangeItem": ("SKU", "Mapping", "Quantity", "ExtendedDescription", "UnitPrice"),
    "Config": ("MatchAddressOn", "MatchContactOn"),
    "EndpointConfig": ("OrderDownload", "OrderStatusUpload", "StockStatusUpload", "StockUpload",
                       "CReturnDownload", "ProvidedStock", "PriceListUpload"),
}
_ORDER["DeliveryAddress"] = _ORDER["InvoiceAddress"]
_ORDER["DeliveryContact"] = _ORDER["InvoiceContact"]

# Array properties in what Khaos pushes (StockItems, StockStatuses, OrderStatuses).
_PUSH_ARRAYS = frozenset({
    "Items", "Deleted", "Barcodes", "Statuses", "Shipments", "Packages", "Images",
    "SupplierInfo", "ListingPrices", "UserDefinedFields", "CustomOptions",
    "ExtendedDescription", "Returns", "ReturnedItems", "ExchangeItems", "Mapping",
})


class XmlInvalid(ValueError):
    """The body is not well-formed XML (or uses a construct we refuse, like entities)."""


def text_of(value: Any) -> str:
    """The XML text for a scalar: booleans as ``true``/``false``, numbers as written."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, str):
        return value
    raise TypeError(f"cannot write {type(value).__name__} as XML text")


def _ordered(tag: str, fields: Mapping[str, Any]) -> list[tuple[str, Any]]:
    order = _ORDER.get(tag, ())
    known = [(k, fields[k]) for k in order if k in fields]
    rest = [(k, v) for k, v in fields.items() if k not in order]
    return known + rest


def _data_item(parent: etree._Element, tag: str, value: Mapping[str, Any]) -> None:
    el = etree.SubElement(parent, tag)
    for attr in ("ID", "Code"):
        if value.get(attr) not in (None, ""):
            el.set(attr, text_of(value[attr]))
    if value.get("Name") not in (None, ""):
        el.text = text_of(value["Name"])


_SCALARS = frozenset({str, int, bool, float, Decimal})


def _write(parent: etree._Element, tag: str, value: Any) -> None:
    if value is None:
        raise ValueError(f"null for {tag}: Khaos fails on null, omit the property instead")
    if type(value) in _SCALARS:  # most values; skips the slower abstract-class checks below
        etree.SubElement(parent, tag).text = text_of(value)
        return
    if tag in _DATA_ITEMS and isinstance(value, Mapping):
        _data_item(parent, tag, value)
    elif tag in _REPEATED and isinstance(value, Sequence) and not isinstance(value, str):
        for entry in value:
            etree.SubElement(parent, tag).text = text_of(entry)
    elif isinstance(value, Mapping):
        el = etree.SubElement(parent, tag)
        for key, item in _ordered(tag, value):
            _write(el, key, item)
    elif isinstance(value, Sequence) and not isinstance(value, str):
        el = etree.SubElement(parent, tag)
        entry_tag = _ARRAY_ENTRY.get(tag, "Item")
        for entry in value:
            _write(el, entry_tag, entry)
    else:
        etree.SubElement(parent, tag).text = text_of(value)


def to_xml(root: str, fields: Mapping[str, Any]) -> bytes:
    """Serialise a JSON-shaped Khaos document under ``root`` (UTF-8, with declaration)."""
    el = etree.Element(root)
    for key, value in _ordered(root, fields):
        _write(el, key, value)
    return bytes(etree.tostring(el, xml_declaration=True, encoding="utf-8"))


def customer_return_import_xml(doc: Mapping[str, Any]) -> bytes:
    """``CustomerReturnImport`` as XML from the JSON document built by ``channel``."""
    return to_xml("CustomerReturnImport", doc)


def endpoint_config_xml(doc: Mapping[str, Any]) -> bytes:
    """``EndpointConfig`` as XML (the vendor's config.xml layout)."""
    return to_xml("EndpointConfig", doc["EndpointConfig"])


# --------------------------------------------------------------------------- reading

def _local(tag: Any) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


MAX_DEPTH = 64  # Khaos documents nest a handful of levels; anything deeper is refused


def _value(tag: str, text: str | None, attrib: Any, children: list[tuple[str, Any]]) -> Any:
    """The JSON-shaped value of one element, from its already converted children."""
    if not children:
        if tag in _PUSH_ARRAYS and not (text or "").strip():
            return []
        attrs = {_local(k): v for k, v in attrib.items() if etree.QName(k).namespace is None}
        if attrs:
            if (text or "").strip():
                attrs["Name"] = (text or "").strip()
            return attrs
        return (text or "").strip()
    names = [name for name, _ in children]
    if tag in _PUSH_ARRAYS or len(set(names)) < len(names):
        return [value for _, value in children]
    return dict(children)


def parse_document(body: bytes) -> tuple[str, Any]:
    """(root element name, JSON-shaped content) of an XML body; raises ``XmlInvalid``.

    Streamed (lxml ``iterparse``): each element is converted when it ends and then freed,
    so a large StockUpload never exists as a whole lxml tree next to its converted form.
    No recursion: a deeply nested body is refused past ``MAX_DEPTH`` with a clear reason."""
    stack: list[list[tuple[str, Any]]] = []
    root_tag = ""
    result: Any = None
    try:
        for event, el in etree.iterparse(
                io.BytesIO(body), events=("start", "end"), resolve_entities=False,
                no_network=True, remove_comments=True, remove_pis=True, huge_tree=True,
                load_dtd=False):
            if event == "start":
                stack.append([])
                if len(stack) > MAX_DEPTH:
                    raise XmlInvalid(f"the XML is nested deeper than {MAX_DEPTH} levels")
                continue
            children = stack.pop()
            tag = _local(el.tag)
            value = _value(tag, el.text, el.attrib, children)
            if stack:
                stack[-1].append((tag, value))
            else:
                root_tag, result = tag, value
            el.clear()  # free what was converted, and the siblings already done
            parent = el.getparent()
            while parent is not None and el.getprevious() is not None:
                del parent[0]
    except etree.XMLSyntaxError as exc:
        raise XmlInvalid(f"the body is not well-formed XML ({exc})") from None
    return root_tag, result
