"""Money and VAT on the Khaos document (ARCHITECTURE 6.4).

Line values come from the source's per-unit figures (``net = price - discount``,
``gross = net + tax``). The sum over lines must equal the source's header total: per-line
rounding differences up to the tolerance are allocated deterministically (largest
remainder, by line value); a line whose share is not a whole number of pennies per unit is
split in two (``n - 1`` units at one price, one unit carrying the odd pennies), because
Khaos takes one ``UnitPrice`` per line.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

from returnbridge.domain.model import ReturnLine, SourceTotals
from returnbridge.domain.money import PENNY, ZERO, allocate, quantize


@dataclass(frozen=True)
class PriceCheck:
    lines: tuple[ReturnLine, ...]
    line_net: Decimal  # after allocation
    line_tax: Decimal
    header_net: Decimal  # product - discount, as the source sent it
    header_tax: Decimal
    header_total: Decimal
    allocated: Decimal  # pennies moved onto lines to meet the header (signed)
    net_gap: Decimal  # unexplained differences beyond the tolerance (signed; 0 if none)
    tax_gap: Decimal
    identity_gap: Decimal  # total - (product - discount + tax), as sent


def _line_total(line: ReturnLine, attr: str) -> Decimal:
    per_unit: tuple[Decimal, ...] = line.unit_nets if attr == "net" else line.unit_taxes
    if len(per_unit) == line.quantity:
        return quantize(sum(per_unit, ZERO))
    unit = line.unit_net if attr == "net" else line.unit_tax
    return quantize(unit * line.quantity)


def _split(line: ReturnLine, net_total: Decimal, tax_total: Decimal) -> list[ReturnLine]:
    """Express totals for ``line`` as one or two lines with whole-penny unit prices."""
    qty = line.quantity
    base_net = (net_total / qty).quantize(PENNY, rounding="ROUND_FLOOR")
    base_tax = (tax_total / qty).quantize(PENNY, rounding="ROUND_FLOOR")
    odd_net = net_total - base_net * qty
    odd_tax = tax_total - base_tax * qty
    if odd_net == ZERO and odd_tax == ZERO:
        return [replace(line, unit_net=base_net, unit_tax=base_tax,
                        unit_gross=base_net + base_tax)]
    if qty == 1:  # cannot happen (a single unit's share is whole pennies), kept for safety
        return [replace(line, unit_net=net_total, unit_tax=tax_total,
                        unit_gross=net_total + tax_total)]
    # Odd pennies are < qty pennies each; put them all on the last unit.
    ids = line.source_unit_ids
    main = replace(line, quantity=qty - 1, unit_net=base_net, unit_tax=base_tax,
                   unit_gross=base_net + base_tax, source_unit_ids=ids[: qty - 1])
    last = replace(line, quantity=1, unit_net=base_net + odd_net, unit_tax=base_tax + odd_tax,
                   unit_gross=base_net + odd_net + base_tax + odd_tax,
                   source_unit_ids=ids[qty - 1:])
    return [main, last]


def price_lines(lines: tuple[ReturnLine, ...], totals: SourceTotals,
                tolerance: Decimal) -> PriceCheck:
    """Allocate header rounding to lines and report anything the tolerance cannot absorb."""
    nets = [_line_total(ln, "net") for ln in lines]
    taxes = [_line_total(ln, "tax") for ln in lines]
    sum_net, sum_tax = sum(nets, ZERO), sum(taxes, ZERO)
    header_net = quantize(totals.product - totals.discount)
    header_tax = quantize(totals.tax)
    header_known = totals.total != ZERO or totals.product != ZERO
    identity_gap = (quantize(totals.total - (header_net + header_tax))
                    if header_known else ZERO)
    net_gap = tax_gap = allocated = ZERO
    if header_known and lines:
        d_net = header_net - sum_net
        d_tax = header_tax - sum_tax
        if abs(d_net) <= tolerance and d_net:
            weights = [n if n > 0 else ZERO for n in nets]
            nets = [n + p for n, p in zip(nets, allocate(d_net, weights), strict=True)]
            allocated += d_net
        elif d_net:
            net_gap = d_net
        if abs(d_tax) <= tolerance and d_tax:
            weights = [t if t > 0 else n for t, n in zip(taxes, nets, strict=True)]
            taxes = [t + p for t, p in zip(taxes, allocate(d_tax, weights), strict=True)]
            allocated += d_tax
        elif d_tax:
            tax_gap = d_tax
    priced: list[ReturnLine] = []
    for line, net, tax in zip(lines, nets, taxes, strict=True):
        priced.extend(_split(line, net, tax))
    return PriceCheck(
        lines=tuple(priced), line_net=sum(nets, ZERO), line_tax=sum(taxes, ZERO),
        header_net=header_net, header_tax=header_tax, header_total=quantize(totals.total),
        allocated=allocated, net_gap=net_gap, tax_gap=tax_gap, identity_gap=identity_gap,
    )
