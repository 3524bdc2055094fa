"""Every GraphQL document the Shopify client can send is valid against the Admin schema of
the pinned API version (the extract the sandbox enforces too)."""

from __future__ import annotations

from graphql import OperationDefinitionNode, parse

from returnbridge.config import ShopifySettings
from returnbridge.payments.shopify import client as shopify_client
from returnbridge.sandbox.shopify.admin_schema import (
    API_VERSION,
    admin_schema,
    validation_errors,
)

OLD_REFUND_CREATE = shopify_client.REFUND_CREATE.replace(
    "userErrors { field message }", "userErrors { field message code }")


def _module_documents() -> dict[str, str]:
    """Every module-level string of the client that is a GraphQL operation, by its name."""
    found: dict[str, str] = {}
    for value in vars(shopify_client).values():
        if isinstance(value, str) and value.lstrip().startswith(("query ", "mutation ")):
            (op,) = [d for d in parse(value).definitions
                     if isinstance(d, OperationDefinitionNode)]
            assert op.name is not None, f"unnamed operation: {value[:60]}"
            found[op.name.value] = value
    return found


def test_the_extract_is_for_the_pinned_api_version() -> None:
    assert ShopifySettings().api_version == API_VERSION == "2026-04"
    schema = admin_schema()
    assert schema.get_directive("idempotent") is not None
    assert schema.mutation_type is not None
    for mutation in ("refundCreate", "storeCreditAccountCredit", "giftCardCreate",
                     "metafieldsSet"):
        assert mutation in schema.mutation_type.fields
    # the real UserError has no code: the defect this extract exists to catch
    assert set(schema.type_map["UserError"].fields) == {"field", "message"}  # type: ignore[union-attr]


def test_every_document_the_client_sends_is_listed_and_valid() -> None:
    documents = _module_documents()
    assert documents == shopify_client.DOCUMENTS  # nothing sent that the list misses
    assert {"FindOrder", "GetOrder", "RefundCreate", "StoreCreditCredit",
            "GiftCardCreate"} <= set(documents)
    invalid = {name: errors for name, doc in documents.items()
               if (errors := validation_errors(doc))}
    assert invalid == {}


def test_the_old_refund_create_selection_is_refused() -> None:
    (error,) = validation_errors(OLD_REFUND_CREATE)
    assert error["message"] == "Field 'code' doesn't exist on type 'UserError'"
    assert error["extensions"] == {"code": "undefinedField", "typeName": "UserError",
                                   "fieldName": "code"}
    assert error["path"] == ["mutation RefundCreate", "refundCreate", "userErrors", "code"]
    assert error["locations"][0]["line"] == 4


def test_refund_create_without_the_directive_definition_would_be_refused() -> None:
    errors = validation_errors(shopify_client.REFUND_CREATE.replace("@idempotent", "@idem"))
    assert [e["extensions"]["code"] for e in errors] == ["undefinedDirective"]
