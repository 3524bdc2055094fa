"""What the refund gate may ask of a payment provider (implemented by
``payments/shopify/client.py``): structural types, so flows need not import the adapter.

Agreed interface for issue #10 (refund, store credit, gift card); every mutation is
idempotent by ``idempotency_key`` (derive it from business identifiers: the return and the
credit note code).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol


class PaymentRefused(Exception):
    """The provider refused the payment (it was not made): a person must look."""


class PaymentOutcomeUnknown(Exception):
    """The payment may or may not have been made, and the provider cannot de-duplicate a
    repeat: never retried blindly; a person checks in the provider's admin."""


class PaymentUnavailable(Exception):
    """The provider could not be reached or refused the credentials: retried later."""


class ProviderRefund(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def note(self) -> str: ...
    @property
    def amount(self) -> Decimal: ...
    @property
    def gateway(self) -> str: ...


class ProviderOrder(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def customer_id(self) -> str: ...  # Shopify Customer GID, "" when none
    @property
    def currency(self) -> str: ...
    @property
    def refunds(self) -> tuple[ProviderRefund, ...]: ...


class ProviderStoreCredit(Protocol):
    @property
    def id(self) -> str: ...  # the store credit (credit transaction) id
    @property
    def amount(self) -> Decimal: ...


class ProviderGiftCard(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def amount(self) -> Decimal: ...
    @property
    def last_characters(self) -> str: ...


class ProviderPayment(Protocol):
    """What a payment of any kind answers: its id and the amount paid."""

    @property
    def id(self) -> str: ...
    @property
    def amount(self) -> Decimal: ...


class RefundsProvider(Protocol):
    """Refunds to the original payment and the order's existing refunds."""

    def find_order(self, name: str) -> ProviderOrder: ...

    def create_refund(self, order_id: str, amount: Decimal, currency: str, note: str,
                      idempotency_key: str) -> ProviderRefund: ...


class StoreCreditProvider(Protocol):
    """Store credit and gift cards (Shopify ``storeCreditAccountCredit`` and
    ``giftCardCreate``), used only when ``[zigzag].store_credit_action`` asks for them."""

    def credit_store_credit(self, customer_id: str, amount: Decimal, currency: str, note: str,
                            idempotency_key: str) -> ProviderStoreCredit: ...

    def create_gift_card(self, customer_id: str, amount: Decimal, currency: str, note: str,
                         idempotency_key: str) -> ProviderGiftCard: ...


class PaymentsProvider(RefundsProvider, StoreCreditProvider, Protocol):
    """Refunds, store credit and gift cards (``ShopifyClient``)."""
