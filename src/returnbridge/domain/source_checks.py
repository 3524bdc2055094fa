"""What a source sends that Khaos cannot take as it is (issue #10, real payloads).

* Items without a SKU (Shopify variants with no SKU send ``"sku": ""``): resolved to a
  Khaos StockCode by variant id or barcode (``[[mapping.skus]]``, then the catalogue), or
  the return is held as ``sku_mismatch`` / ``exchange_unknown_sku`` naming the variant.
* A customer without a name: Khaos needs a Forename or Surname on the contact.
* A return in a currency other than the Khaos account's.
* A line whose tax implies a VAT rate that is not one of the configured rates.
* An exchange item the source itself marked out of stock, with or without a catalogue.

Pure functions of the return, the configuration and the looked-up facts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from decimal import Decimal

from returnbridge.domain.exceptions import Problem
from returnbridge.domain.lifecycle import ReturnState
from returnbridge.domain.model import ReturnCase, ReturnLine
from returnbridge.domain.money import ZERO, quantize


def sku_keys(variant_id: str, barcode: str = "") -> tuple[str, ...]:
    """Lookup keys of an item without a SKU, best first."""
    keys: list[str] = []
    if variant_id:
        keys.append(f"variant:{variant_id}")
    if barcode:
        keys.append(f"barcode:{barcode}")
    return tuple(keys)


def _described(variant_id: str, barcode: str, title: str) -> str:
    parts = [f"variant id {variant_id or '(none)'}", f"barcode {barcode or '(none)'}"]
    if title:
        parts.append(f"title {title!r}")
    return ", ".join(parts)


def _found(resolved: Mapping[str, str], variant_id: str, barcode: str) -> str:
    for key in sku_keys(variant_id, barcode):
        if resolved.get(key):
            return resolved[key]
    return ""


_MAP_HINT = ("Give the variant a SKU in the shop, or map it to a Khaos StockCode: add "
             "[[mapping.skus]] with variant_id = \"{variant}\" (or barcode) and stock_code = "
             "\"...\" to returnbridge.toml and restart, or give the Khaos item this barcode "
             "(or the variant id as its OtherRef) and wait for the next stock upload. The "
             "return is released automatically once the item resolves.")


def resolve_blank_skus(case: ReturnCase, resolved: Mapping[str, str],
                       problems: list[Problem]) -> ReturnCase:
    """``case`` with blank SKUs replaced by the StockCode they resolve to; a blocking
    problem for each item that does not resolve (the item stays blank, so it is never
    served)."""
    if all(ln.sku for ln in case.lines) and all(ex.sku for ex in case.exchanges):
        return case
    lines: list[ReturnLine] = []
    for ln in case.lines:
        code = ln.sku or _found(resolved, ln.variant_id, ln.barcode)
        if not code:
            what = _described(ln.variant_id, ln.barcode, ln.title)
            problems.append(Problem(
                type="sku_mismatch",
                message=f"{case.source} sent a returned item without a SKU ({what}, "
                f"{ln.quantity} unit(s)); Khaos needs a StockCode for it.",
                dedupe_key=f"{case.associated_ref}:sku:blank:"
                f"{ln.variant_id or ln.barcode or ln.title}",
                details={"sku": "", "variant_id": ln.variant_id, "barcode": ln.barcode,
                         "title": ln.title, "quantity": str(ln.quantity)},
                next_action=_MAP_HINT.format(variant=ln.variant_id or "..."),
            ))
        lines.append(replace(ln, sku=code) if code != ln.sku else ln)
    exchanges = []
    for ex in case.exchanges:
        code = ex.sku or _found(resolved, ex.variant_id, "")
        if not code:
            what = _described(ex.variant_id, "", ex.title)
            problems.append(Problem(
                type="exchange_unknown_sku",
                message=f"{case.source} sent an exchange item without a SKU ({what}); "
                "Khaos needs a StockCode to send it out.",
                dedupe_key=f"{case.associated_ref}:exchange-sku:blank:"
                f"{ex.variant_id or ex.title}",
                details={"sku": "", "variant_id": ex.variant_id, "title": ex.title},
                next_action=_MAP_HINT.format(variant=ex.variant_id or "..."),
            ))
        exchanges.append(replace(ex, sku=code) if code != ex.sku else ex)
    return replace(case, lines=tuple(lines), exchanges=tuple(exchanges))


_NEVER_SENT = frozenset({ReturnState.CANCELLED, ReturnState.EXPIRED})


def contact_problems(case: ReturnCase, fallback_contact: bool) -> list[Problem]:
    """Khaos refuses a contact without Forename and Surname (MatchContactOn Surname).
    Cancelled and expired returns never go to Khaos: nothing to hold."""
    c = case.customer
    if c.first_name.strip() or c.last_name.strip() or fallback_contact or (
            case.state in _NEVER_SENT):
        return []
    return [Problem(
        type="unknown_customer",
        message=f"{case.source} gave no name for {c.email or 'the customer'}; Khaos "
        "needs a Forename or Surname on the return's contact, so it is not sent.",
        dedupe_key=f"{case.associated_ref}:contact-name",
        details={"email": c.email},
        next_action="Returns read from a platform's list API may carry no name: check that "
        "the platform's API key can read return details (the backstop fetches them), or set "
        "[policy].fallback_contact_surname (and _forename) to the name to use and restart; "
        "the return is re-evaluated.",
    )]


def currency_problems(case: ReturnCase, khaos_currency: str) -> list[Problem]:
    if (not khaos_currency or not case.currency or case.currency == khaos_currency
            or case.state in _NEVER_SENT):
        return []
    return [Problem(
        type="currency_mismatch",
        message=f"{case.associated_ref} is in {case.currency} but the Khaos account is in "
        f"{khaos_currency}; its amounts would be booked as {khaos_currency}.",
        dedupe_key=f"{case.associated_ref}:currency",
        details={"currency": case.currency, "khaos_currency": khaos_currency},
    )]


def source_out_of_stock(case: ReturnCase) -> list[Problem]:
    """The source said it cannot send this exchange item: never serve the exchange."""
    return [Problem(
        type="exchange_out_of_stock",
        message=f"Exchange item {ex.sku or ex.variant_id or ex.title}: "
        f"{case.source} marked it out of stock, so it will not send it.",
        dedupe_key=f"{case.associated_ref}:exchange-stock:{ex.sku or ex.variant_id}",
        details={"sku": ex.sku, "variant_id": ex.variant_id, "by": case.source},
    ) for ex in case.exchanges if ex.out_of_stock]


def _rate_text(rate: Decimal) -> str:
    return f"{(rate * 100).quantize(Decimal('0.1')).normalize():f}%"


def vat_rate_problems(case: ReturnCase, lines: Iterable[ReturnLine],
                      rates: tuple[Decimal, ...], per_unit_tolerance: Decimal
                      ) -> list[Problem]:
    """A line whose tax is none of ``rates`` of its net value (within a penny per unit)."""
    if not rates:
        return []
    out: list[Problem] = []
    seen: dict[str, int] = {}
    for ln in lines:
        nets = ln.unit_nets or (ln.unit_net,) * ln.quantity
        taxes = ln.unit_taxes or (ln.unit_tax,) * ln.quantity
        net = sum(nets, ZERO)
        tax = sum(taxes, ZERO)
        allowed = per_unit_tolerance * max(len(nets), 1)
        if any(abs(tax - net * r) <= allowed for r in rates):
            continue
        implied = f"{_rate_text(tax / net)}" if net else "tax on a zero value"
        key = ln.sku or f"variant-{ln.variant_id or ln.title}"
        seen[key] = seen.get(key, 0) + 1
        if seen[key] > 1:  # one SKU on several lines (other reason or grade): one each
            key = f"{key}:{seen[key]}"
        out.append(Problem(
            type="tax_drift",
            message=f"SKU {ln.sku or '(no SKU)'}: tax {quantize(tax)} on a net value of "
            f"{quantize(net)} {case.currency} implies a VAT rate of {implied}, which is none "
            f"of the configured rates ({', '.join(_rate_text(r) for r in rates)}).",
            dedupe_key=f"{case.associated_ref}:vat_rate:{key}",
            details={"sku": ln.sku, "net": str(quantize(net)), "tax": str(quantize(tax)),
                     "implied_rate": implied},
            next_action="Check the product's tax settings in the shop and the line in the "
            "returns platform; correct the VAT on the Khaos credit note if it is wrong. If "
            "the rate is right, add it to [policy].vat_rates.",
        ))
    return out
