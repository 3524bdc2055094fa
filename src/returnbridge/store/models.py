"""Domain tables (ARCHITECTURE 9). Every change here needs an Alembic migration."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from returnbridge.store.types import Money

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both backends (SQLite keeps no zone; we store UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass an aware datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class InboundEvent(Base):
    """Every event received, with its raw bytes, before anything else happens to it."""

    __tablename__ = "inbound_events"
    __table_args__ = (
        UniqueConstraint("source", "dedupe_key", name="uq_inbound_events_dedupe"),
        Index("ix_inbound_events_source_ref_status", "source", "source_ref", "status", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(20))
    channel: Mapped[str] = mapped_column(String(20), default="webhook")  # webhook|backstop|...
    topic: Mapped[str] = mapped_column(String(80), default="")
    trigger: Mapped[str] = mapped_column(String(80), default="")
    dedupe_key: Mapped[str] = mapped_column(String(128))
    source_ref: Mapped[str] = mapped_column(String(80), default="")
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    headers: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    body_sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default="received", index=True)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    error: Mapped[str] = mapped_column(Text, default="")
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    # migration 0003: how many times processing was tried (a failed try leaves ``error``).
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class ReturnRow(Base):
    __tablename__ = "returns"
    __table_args__ = (
        UniqueConstraint("source", "source_return_id", name="uq_returns_source_id"),
        Index("ix_returns_khaos_status_ready", "khaos_status", "ready_at", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    associated_ref: Mapped[str] = mapped_column(String(50), unique=True)
    source: Mapped[str] = mapped_column(String(20))
    source_return_id: Mapped[str] = mapped_column(String(80))
    order_ref: Mapped[str] = mapped_column(String(80), default="")
    customer_email: Mapped[str] = mapped_column(String(255), default="")
    currency: Mapped[str] = mapped_column(String(3), default="")
    state: Mapped[str] = mapped_column(String(20))
    source_state: Mapped[str] = mapped_column(String(40), default="")
    khaos_status: Mapped[str] = mapped_column(String(20), default="pending")
    khaos_urn: Mapped[str] = mapped_column(String(50), default="")
    process_return: Mapped[bool] = mapped_column(Boolean, default=False)
    source_created_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    source_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_event_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    ready_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    served_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    wait_reason: Mapped[str] = mapped_column(String(255), default="")
    case_json: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    credit_note_code: Mapped[str] = mapped_column(String(50), default="")
    credit_note_value: Mapped[Decimal | None] = mapped_column(Money(), nullable=True)
    # 0002: confirmation evidence, gap accounting and follow-up documents.
    imported_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    credit_confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    credit_source: Mapped[str] = mapped_column(String(20), default="")  # soap|file|operator|push
    khaos_order_code: Mapped[str] = mapped_column(String(50), default="")
    first_seen_via: Mapped[str] = mapped_column(String(20), default="webhook")  # webhook|backstop
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("returns.id", ondelete="SET NULL"), nullable=True, index=True
    )
    # 0003: the credit note's stage in Khaos (cleared or not: [khaos].cleared_credit_note_
    # stages) and what the platform asked to be refunded (amount, method, event), if anything.
    credit_note_stage: Mapped[str] = mapped_column(String(40), default="")
    refund_request: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)

    lines: Mapped[list[ReturnLineRow]] = relationship(
        back_populates="ret", cascade="all, delete-orphan", order_by="ReturnLineRow.position"
    )
    exchanges: Mapped[list[ExchangeLineRow]] = relationship(
        back_populates="ret", cascade="all, delete-orphan", order_by="ExchangeLineRow.position"
    )


class ReturnLineRow(Base):
    __tablename__ = "return_lines"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    return_id: Mapped[int] = mapped_column(ForeignKey("returns.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    sku: Mapped[str] = mapped_column(String(100))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_net: Mapped[Decimal] = mapped_column(Money())
    unit_tax: Mapped[Decimal] = mapped_column(Money())
    unit_gross: Mapped[Decimal] = mapped_column(Money())
    discount: Mapped[Decimal] = mapped_column(Money())
    reason: Mapped[str] = mapped_column(String(255), default="")
    parent_reason: Mapped[str] = mapped_column(String(255), default="")
    condition: Mapped[str] = mapped_column(String(80), default="")
    disposition: Mapped[str] = mapped_column(String(20), default="unknown")
    physical_return_expected: Mapped[bool] = mapped_column(Boolean, default=True)
    received_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    source_unit_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    khaos_reason_id: Mapped[str] = mapped_column(String(20), default="")
    processing: Mapped[str] = mapped_column(String(20), default="")

    ret: Mapped[ReturnRow] = relationship(back_populates="lines")


class ExchangeLineRow(Base):
    __tablename__ = "exchange_lines"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    return_id: Mapped[int] = mapped_column(ForeignKey("returns.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    sku: Mapped[str] = mapped_column(String(100))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_net: Mapped[Decimal] = mapped_column(Money())
    unit_tax: Mapped[Decimal] = mapped_column(Money())
    unit_gross: Mapped[Decimal] = mapped_column(Money())
    out_of_stock: Mapped[bool] = mapped_column(Boolean, default=False)

    ret: Mapped[ReturnRow] = relationship(back_populates="exchanges")


class TimelineEntry(Base):
    """What happened to a return, in order, with the evidence for each step."""

    __tablename__ = "timeline"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    return_id: Mapped[int] = mapped_column(ForeignKey("returns.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    kind: Mapped[str] = mapped_column(String(40))
    message: Mapped[str] = mapped_column(Text)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ExceptionRow(Base):
    __tablename__ = "exceptions"
    __table_args__ = (
        UniqueConstraint("type", "dedupe_key", name="uq_exceptions_dedupe"),
        Index("ix_exceptions_status_owner", "status", "owner"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    type: Mapped[str] = mapped_column(String(50))
    owner: Mapped[str] = mapped_column(String(20))
    severity: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default="open")
    return_id: Mapped[int | None] = mapped_column(
        ForeignKey("returns.id", ondelete="SET NULL"), nullable=True, index=True
    )
    associated_ref: Mapped[str] = mapped_column(String(50), default="")
    dedupe_key: Mapped[str] = mapped_column(String(255))
    message: Mapped[str] = mapped_column(Text)
    next_action: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    count: Mapped[int] = mapped_column(Integer, default=1)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    resolved_by: Mapped[str] = mapped_column(String(120), default="")
    resolution: Mapped[str] = mapped_column(Text, default="")


class KhaosDelivery(Base):
    """One answer to a Khaos poll: what was handed over, in which document."""

    __tablename__ = "khaos_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivered_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    endpoint: Mapped[str] = mapped_column(String(40), default="returns")
    format: Mapped[str] = mapped_column(String(10))
    request_continuation: Mapped[str] = mapped_column(String(255), default="")
    response_continuation: Mapped[str] = mapped_column(String(255), default="")
    specific_ids: Mapped[str] = mapped_column(Text, default="")
    return_count: Mapped[int] = mapped_column(Integer, default=0)
    document: Mapped[bytes] = mapped_column(LargeBinary)


class KhaosDeliveryItem(Base):
    __tablename__ = "khaos_delivery_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("khaos_deliveries.id", ondelete="CASCADE"), index=True
    )
    return_id: Mapped[int] = mapped_column(ForeignKey("returns.id", ondelete="CASCADE"), index=True)
    associated_ref: Mapped[str] = mapped_column(String(50), index=True)
    redelivery: Mapped[bool] = mapped_column(Boolean, default=False)


class AuditEntry(Base):
    """Append-only; each row carries the hash of the previous one, so edits show."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(80))
    subject: Mapped[str] = mapped_column(String(120), default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditAnchor(Base):
    """One row (id 1): how many audit rows exist and the last one's hash, sealed with a MAC
    (HMAC-SHA256 under [audit].hmac_key when set). Kept apart from the chain so that removing
    rows at the end, or editing a row and recomputing every hash after it, is detected."""

    __tablename__ = "audit_anchor"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
    head_id: Mapped[int] = mapped_column(Integer, default=0)
    head_hash: Mapped[str] = mapped_column(String(64))
    mac: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Watermark(Base):
    __tablename__ = "watermarks"

    name: Mapped[str] = mapped_column(String(80), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class StockItem(Base):
    """Khaos stock item mirror (StockUpload); ``stock_id`` is Khaos's stable key."""

    __tablename__ = "khaos_stock_items"

    stock_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    stock_code: Mapped[str] = mapped_column(String(100), index=True)
    other_ref: Mapped[str] = mapped_column(String(100), default="", index=True)
    description: Mapped[str] = mapped_column(Text, default="")
    barcodes: Mapped[list[str]] = mapped_column(JSON, default=list)
    publish_on_web: Mapped[bool] = mapped_column(Boolean, default=True)
    discontinued: Mapped[bool] = mapped_column(Boolean, default=False)
    stock_controlled: Mapped[bool] = mapped_column(Boolean, default=True)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    raw: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class StockBarcode(Base):
    __tablename__ = "khaos_stock_barcodes"

    barcode: Mapped[str] = mapped_column(String(100), primary_key=True)
    stock_id: Mapped[str] = mapped_column(String(40), primary_key=True)


class StockLevel(Base):
    """Khaos stock level per site (StockStatusUpload), keyed StockID + SiteID."""

    __tablename__ = "khaos_stock_levels"

    stock_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    site_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    stock_code: Mapped[str] = mapped_column(String(100), default="", index=True)
    available: Mapped[Decimal] = mapped_column(Money())
    on_order: Mapped[Decimal] = mapped_column(Money())
    from_children: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    pushed_available: Mapped[Decimal | None] = mapped_column(Money(), nullable=True)
    pushed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class KhaosOrderStatus(Base):
    """Order / credit note status pushed by Khaos (OrderStatusUpload) or read over SOAP."""

    __tablename__ = "khaos_order_statuses"

    order_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_code: Mapped[str] = mapped_column(String(50), default="")
    associated_ref: Mapped[str] = mapped_column(String(80), default="", index=True)
    order_type: Mapped[str] = mapped_column(String(10), default="")
    invoice_code: Mapped[str] = mapped_column(String(50), default="")
    stage: Mapped[str] = mapped_column(String(40), default="")
    total: Mapped[Decimal | None] = mapped_column(Money(), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    raw: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class CustomerMirror(Base):
    """Email -> Khaos URN (ARCHITECTURE 6.5), loaded from Khaos or entered by an operator."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(255), unique=True)  # stored lower-case
    urn: Mapped[str] = mapped_column(String(50))
    name: Mapped[str] = mapped_column(String(255), default="")
    origin: Mapped[str] = mapped_column(String(20), default="khaos")  # khaos|soap|operator
    postcode: Mapped[str] = mapped_column(String(20), default="")  # for match suggestions
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class RefundRow(Base):
    """A payment refund we made or saw (ARCHITECTURE 5.5), keyed by its idempotency key."""

    __tablename__ = "refunds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    return_id: Mapped[int | None] = mapped_column(
        ForeignKey("returns.id", ondelete="SET NULL"), nullable=True, index=True
    )
    associated_ref: Mapped[str] = mapped_column(String(50), default="", index=True)
    provider: Mapped[str] = mapped_column(String(20))  # shopify | zigzag | loop
    origin: Mapped[str] = mapped_column(String(20))  # returnbridge | external
    idempotency_key: Mapped[str] = mapped_column(String(120), unique=True)
    provider_refund_id: Mapped[str] = mapped_column(String(120), default="")
    order_ref: Mapped[str] = mapped_column(String(80), default="")
    amount: Mapped[Decimal] = mapped_column(Money())
    currency: Mapped[str] = mapped_column(String(3), default="")
    status: Mapped[str] = mapped_column(String(20), default="created")
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ReconciliationItem(Base):
    """Money finance must account for outside the credit note (migration 0004).

    ``category`` names the component: ``shipping`` / ``handling_fee`` (not on the credit
    note because no non-stock SKU is configured, or because it arrived after handover), or
    ``refund_record`` (a platform refund that could not be recorded against the Khaos credit
    note automatically: a finance task, with the refund id in ``reference``). One row per
    return and category; the reconciliation report lists the open ones."""

    __tablename__ = "reconciliation_items"
    __table_args__ = (
        UniqueConstraint("associated_ref", "category", name="uq_reconciliation_items_ref_cat"),
        Index("ix_reconciliation_items_status", "status", "category"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    return_id: Mapped[int | None] = mapped_column(
        ForeignKey("returns.id", ondelete="SET NULL"), nullable=True, index=True
    )
    associated_ref: Mapped[str] = mapped_column(String(50))
    category: Mapped[str] = mapped_column(String(30))
    amount: Mapped[Decimal] = mapped_column(Money())
    currency: Mapped[str] = mapped_column(String(3), default="")
    status: Mapped[str] = mapped_column(String(20), default="open")  # open|withdrawn|done
    reference: Mapped[str] = mapped_column(String(120), default="")
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    resolved_by: Mapped[str] = mapped_column(String(120), default="")


# -- reconciliation legs (migration 0009; issue #13) --------------------------------


def table_of(model: type[Base]) -> Table:
    """A model's Core table (typed), for set-based statements."""
    table = model.__table__
    assert isinstance(table, Table)
    return table
# Money here is BigInteger minor units (pence): exact SUMs on SQLite and PostgreSQL alike.


class ReconPlatformLeg(Base):
    """Leg 1: what the returns platform settled for a return (refreshed from ``returns``)."""

    __tablename__ = "recon_platform"
    # covering: a month's returns are read from the index alone (issue #13's 1M bench)
    __table_args__ = (Index("ix_recon_platform_outcome", "outcome_at", "associated_ref"),)

    associated_ref: Mapped[str] = mapped_column(String(50), primary_key=True)
    source: Mapped[str] = mapped_column(String(20), index=True)
    order_ref: Mapped[str] = mapped_column(String(80), default="", index=True)
    customer: Mapped[str] = mapped_column(String(255), default="")
    currency: Mapped[str] = mapped_column(String(3), default="")
    state: Mapped[str] = mapped_column(String(20), default="")
    outcome_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    units: Mapped[int] = mapped_column(Integer, default=0)
    goods: Mapped[int] = mapped_column(BigInteger, default=0)  # header total incl. VAT
    tax: Mapped[int] = mapped_column(BigInteger, default=0)
    refund: Mapped[int] = mapped_column(BigInteger, default=0)
    store_credit: Mapped[int] = mapped_column(BigInteger, default=0)
    exchange_credit: Mapped[int] = mapped_column(BigInteger, default=0)
    shipping: Mapped[int] = mapped_column(BigInteger, default=0)
    handling_fee: Mapped[int] = mapped_column(BigInteger, default=0)
    bonus: Mapped[int] = mapped_column(BigInteger, default=0)
    upsell: Mapped[int] = mapped_column(BigInteger, default=0)


class ReconCreditNoteLeg(Base):
    """Leg 2: the Khaos credit note for a return (code, value, VAT, lines, stage)."""

    __tablename__ = "recon_credit_notes"
    __table_args__ = (Index("ix_recon_credit_notes_raised", "raised_at", "associated_ref"),)

    associated_ref: Mapped[str] = mapped_column(String(50), primary_key=True)
    code: Mapped[str] = mapped_column(String(50), default="")
    value: Mapped[int] = mapped_column(BigInteger, default=0)
    tax: Mapped[int] = mapped_column(BigInteger, default=0)
    shipping_line: Mapped[int] = mapped_column(BigInteger, default=0)
    fee_line: Mapped[int] = mapped_column(BigInteger, default=0)  # positive: withheld
    stage: Mapped[str] = mapped_column(String(40), default="")
    cleared: Mapped[bool] = mapped_column(Boolean, default=False)
    raised_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ReconPaymentLeg(Base):
    """Leg 3: one refund on the payment provider (or one store credit issued), attributed
    to a return when it can be ('' when nothing ties it to one: a refund made by hand)."""

    __tablename__ = "recon_payments"
    __table_args__ = (
        UniqueConstraint("provider", "provider_ref", name="uq_recon_payments_provider_ref"),
        Index("ix_recon_payments_created", "created_at", "associated_ref"),
        # the engine's per-return payment totals come from this index alone
        Index("ix_recon_payments_totals", "associated_ref", "kind", "amount"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    associated_ref: Mapped[str] = mapped_column(String(50), default="")
    order_ref: Mapped[str] = mapped_column(String(80), default="")
    kind: Mapped[str] = mapped_column(String(20), default="refund")  # refund | store_credit
    provider: Mapped[str] = mapped_column(String(20), default="shopify")
    provider_ref: Mapped[str] = mapped_column(String(120))
    amount: Mapped[int] = mapped_column(BigInteger)
    gateway: Mapped[str] = mapped_column(String(60), default="")
    ours: Mapped[bool] = mapped_column(Boolean, default=False)  # carries our tag
    matched_by: Mapped[str] = mapped_column(String(20), default="")  # tag|record|amount|repeat
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class AlertOutbox(Base):
    """Alerts: what was (or is to be) sent to which route, so nothing is sent twice.

    One row per (route, alert_key). ``alert_key`` names the cause: ``exc:{id}:{severity}``
    for the first alert of an exception at a severity (a higher severity is a new key, so an
    escalation alerts again), ``exc:{id}:age:{hours}`` for an age threshold,
    ``digest:{period start}`` for a digest. Status: queued (waits for the route's digest),
    pending (to send), sent, digested (went out in digest ``digest_id``), dropped (resolved
    before its digest went), superseded (an age threshold already passed at the first alert).
    """

    __tablename__ = "alert_outbox"
    __table_args__ = (
        UniqueConstraint("route", "alert_key", name="uq_alert_outbox_route_key"),
        Index("ix_alert_outbox_status_due", "status", "due_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    route: Mapped[str] = mapped_column(String(60))
    alert_key: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(20))  # exception | digest
    exception_id: Mapped[int | None] = mapped_column(
        ForeignKey("exceptions.id", ondelete="SET NULL"), nullable=True, index=True)
    status: Mapped[str] = mapped_column(String(20))
    digest_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    title: Mapped[str] = mapped_column(String(255), default="")
    body: Mapped[str] = mapped_column(Text, default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class AlertRouteState(Base):
    """The health of one alert route: consecutive failures and the last error."""

    __tablename__ = "alert_routes"

    route: Mapped[str] = mapped_column(String(60), primary_key=True)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    last_failure_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ConnectionHealth(Base):
    """Consecutive failures of calls to one external system (khaos_soap, shopify, or a
    returns platform's API), for the ``connection_failing`` exception and /metrics."""

    __tablename__ = "connection_health"

    system: Mapped[str] = mapped_column(String(30), primary_key=True)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    last_failure_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class JobRun(Base):
    """The last start, success and failure of each scheduled job (``schedule_not_running``,
    /metrics, ``returnbridge doctor``)."""

    __tablename__ = "job_runs"

    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    last_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_failure_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    last_summary: Mapped[str] = mapped_column(Text, default="")


# --- 0003: the team console (users, sessions, API tokens, console mapping rules) -----------


class ConsoleUser(Base):
    """A named person who signs in to the console; ``password_hash`` is argon2id."""

    __tablename__ = "console_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    display_name: Mapped[str] = mapped_column(String(120), default="")
    role: Mapped[str] = mapped_column(String(20))  # cx | warehouse | finance | admin
    password_hash: Mapped[str] = mapped_column(String(255))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ConsoleSession(Base):
    """A signed-in browser. ``id`` is the SHA-256 of the cookie value, never the value."""

    __tablename__ = "console_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("console_users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    client: Mapped[str] = mapped_column(String(255), default="")


class ApiToken(Base):
    """A named bearer token with a scope; only the SHA-256 of the token is kept."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    scope: Mapped[str] = mapped_column(String(20))  # read | act | admin
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(120), default="")
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ConsoleMappingRule(Base):
    """A ``[[mapping.reasons]]`` rule saved in the console; checked before the TOML rules."""

    __tablename__ = "console_mapping_rules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(20), default="*")
    reason: Mapped[str] = mapped_column(String(255), default="*")
    condition: Mapped[str] = mapped_column(String(80), default="*")
    disposition: Mapped[str] = mapped_column(String(20), default="*")
    khaos_reason_id: Mapped[str] = mapped_column(String(20))
    processing: Mapped[str] = mapped_column(String(20))
    note: Mapped[str] = mapped_column(Text, default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(120), default="")


class ReasonCoverageDay(Base):
    """The Mapping page's coverage, pre-grouped per UTC day of ``returns.last_event_at``
    (0012): one row per day and (source, reason, condition, disposition, keep item). Each
    return counts on one day only, so the days of a period add up. Rebuilt a day at a time
    from the returns (``store/reason_coverage.py``) when that day is marked dirty."""

    __tablename__ = "reason_coverage_days"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    day: Mapped[str] = mapped_column(String(10), index=True)  # YYYY-MM-DD, UTC
    source: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(String(255))
    condition: Mapped[str] = mapped_column(String(80))
    disposition: Mapped[str] = mapped_column(String(20))
    physical_return_expected: Mapped[bool] = mapped_column(Boolean)
    returns: Mapped[int] = mapped_column(Integer)
    lines: Mapped[int] = mapped_column(Integer)
    units: Mapped[int] = mapped_column(BigInteger)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime())
    example_ref: Mapped[str] = mapped_column(String(50))


class ReasonCoverageDirty(Base):
    """A day whose ``reason_coverage_days`` rows are out of date because this return (or
    its lines) changed. Written by database triggers on ``returns`` and ``return_lines``
    (0012), so every writer marks it; cleared when the day is rebuilt."""

    __tablename__ = "reason_coverage_dirty"

    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    return_id: Mapped[int] = mapped_column(Integer, primary_key=True)


class ConsoleLoginFailure(Base):
    """A failed console sign-in (0012), per user name or client address: every serving
    process counts the same failures (``flows/console/login_throttle.py``)."""

    __tablename__ = "console_login_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


Index("ix_console_login_failures_key_at", ConsoleLoginFailure.key, ConsoleLoginFailure.at)


class ReconLegsVersion(Base):
    """One row (id 1): a counter that database triggers (0012) add to whenever a
    reconciliation leg row is inserted, changed or deleted."""

    __tablename__ = "recon_legs_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger, default=0)


class ReconciliationReport(Base):
    """A month's reconciliation report (summary and differences) as computed at a
    ``recon_legs_version``; the console page reads it while the legs are unchanged (0012)."""

    __tablename__ = "reconciliation_reports"

    period: Mapped[str] = mapped_column(String(7), primary_key=True)
    source: Mapped[str] = mapped_column(String(20), primary_key=True)
    legs_version: Mapped[int] = mapped_column(BigInteger)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)
    differences: Mapped[list[dict[str, Any]]] = mapped_column(JSON)


# Console search and overview (0003): the filters a person uses on 100,000 returns.
# Covering: the Overview counts every stage of a period from this index alone.
Index("ix_returns_first_seen_flow", ReturnRow.first_seen_at, ReturnRow.khaos_status,
      ReturnRow.imported_at, ReturnRow.credit_confirmed_at)
Index("ix_returns_status_credit", ReturnRow.khaos_status, ReturnRow.credit_confirmed_at,
      ReturnRow.process_return)
Index("ix_returns_customer_email", ReturnRow.customer_email)
Index("ix_returns_order_ref", ReturnRow.order_ref)
Index("ix_returns_served_at", ReturnRow.served_at)
# Console text search (0010): "contains" filters scan this narrow index, not the wide rows.
# (PostgreSQL also gets pg_trgm GIN indexes on the three text columns, in the migration.)
Index("ix_returns_search", ReturnRow.first_seen_at, ReturnRow.associated_ref,
      ReturnRow.order_ref, ReturnRow.customer_email)
Index("ix_returns_khaos_status_first_seen", ReturnRow.khaos_status, ReturnRow.first_seen_at)
Index("ix_return_lines_sku", ReturnLineRow.sku)
# Reason coverage (0012): a day's returns are rebuilt from this index, and a period counted.
Index("ix_returns_last_event_at", ReturnRow.last_event_at)
Index("ix_exceptions_status_first_seen", ExceptionRow.status, ExceptionRow.first_seen_at)


class SkuAlias(Base):
    """A person's decision (console, one click on a candidate): the shop's ``source_sku``
    is the Khaos item sent as ``khaos_sku`` (its value in the [khaos].sku_mapping field)."""

    __tablename__ = "sku_aliases"

    source_sku: Mapped[str] = mapped_column(String(100), primary_key=True)
    khaos_sku: Mapped[str] = mapped_column(String(100))
    stock_id: Mapped[str] = mapped_column(String(40), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(120), default="")


class CallRate(Base):
    """The next free call slot for one external API (0013), shared by every process:
    ``store/call_rates.py`` keeps all of returnbridge's calls to Shopify and to desktop Khaos
    SOAP, retries included, within their per-minute limits."""

    __tablename__ = "call_rates"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    # Seconds since the epoch (wall clock, shared by processes and hosts) of the
    # theoretical arrival time of the next call (GCRA).
    next_slot: Mapped[float] = mapped_column(Double(), default=0.0)
