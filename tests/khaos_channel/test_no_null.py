"""Khaos fails an import on JSON null: a document with one is refused before it is sent,
naming where the null is."""

import pytest

from returnbridge.erp.khaos.channel import NullInDocument, assert_no_null


def test_a_null_anywhere_is_refused_with_its_path() -> None:
    doc = {"Returns": [{"AssociatedRef": "LR-1", "ReturnedItems": [
        {"SKU": "TEE", "Quantity": 1}, {"SKU": "CAP", "UnitPrice": {"Gross": None}}]}],
        "ApiVersion": 1000}
    with pytest.raises(NullInDocument, match=r"^null at \$\.Returns\[0\]\.ReturnedItems\[1\]"
                                             r"\.UnitPrice\.Gross$"):
        assert_no_null(doc)


def test_a_document_without_null_passes_falsy_values_included() -> None:
    assert_no_null({"Returns": [{"Notes": "", "Quantity": 0, "ProcessReturn": False,
                                 "ExtendedDescription": [], "Mapping": [{}]}]})
