"""Suggestions that say why (docs/suggestions.md): a Khaos reason for an unmapped return
reason, catalogue items for an unknown SKU, Khaos customers for an unknown customer.

These are ranked guesses from string similarity (rapidfuzz) and from what was decided before;
each carries a confidence in 0..1, the evidence count it rests on and a sentence saying why.
Nothing here is applied automatically: a person copies the suggestion or not. Their
precision@1 on the labelled sets in ``tests/fixtures/suggest/`` is printed by ``make bench``;
the confidence is a ranking score, not a calibrated probability.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from rapidfuzz import fuzz

# --- reasons ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ReasonEvidence:
    """One returned line whose reason went to Khaos with this reason id and processing."""

    reason: str
    disposition: str
    khaos_reason_id: str
    processing: str
    after_exception: bool = False  # mapped after a person resolved unmapped_return_reason


@dataclass(frozen=True)
class ReasonSuggestion:
    reason: str
    disposition: str
    khaos_reason_id: str
    processing: str
    confidence: float
    evidence: int  # lines supporting the suggestion
    why: str


def normalise(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9 ]+", " ", text.casefold()).split())


def suggest_reason(reason: str, disposition: str, evidence: Sequence[ReasonEvidence],
                   *, min_similarity: float = 0.6) -> ReasonSuggestion | None:
    """The Khaos reason most lines with a similar reason *and the same disposition* went to.

    Only the same disposition counts: a reason text alone must never turn damaged goods into
    a restock. Lines mapped after a person resolved an ``unmapped_return_reason`` count
    double (a decision about exactly this gap).
    """
    query = normalise(reason)
    if not query:
        return None
    votes: dict[tuple[str, str], float] = defaultdict(float)
    support: Counter[tuple[str, str]] = Counter()
    examples: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    best_sim: dict[tuple[str, str], float] = defaultdict(float)
    for ev in evidence:
        if ev.disposition != disposition or not ev.khaos_reason_id:
            continue
        sim = fuzz.token_set_ratio(query, normalise(ev.reason)) / 100
        if sim < min_similarity:
            continue
        key = (ev.khaos_reason_id, ev.processing)
        weight = sim * (2.0 if ev.after_exception else 1.0)
        votes[key] += weight
        support[key] += 1
        examples[key][ev.reason] += 1
        best_sim[key] = max(best_sim[key], sim)
    if not votes:
        return None
    top = max(votes, key=lambda k: (votes[k], support[k], k))
    share = votes[top] / sum(votes.values())
    confidence = round(best_sim[top] * share, 2)
    quoted = ", ".join(f'"{text}" x{n}' for text, n in examples[top].most_common(3))
    why = (f"{support[top]} line(s) with a similar reason and disposition {disposition} went "
           f"to Khaos reason {top[0]} ({quoted}); {share:.0%} of the similar evidence agrees")
    return ReasonSuggestion(reason, disposition, top[0], top[1], confidence, support[top], why)


def toml_snippet(s: ReasonSuggestion, source: str = "*", condition: str = "*") -> str:
    """A ``[[mapping.reasons]]`` entry with the confidence and evidence as a comment."""

    def q(value: str) -> str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    return "\n".join([
        f"# confidence {s.confidence:.2f}, evidence {s.evidence} line(s): {s.why}",
        "[[mapping.reasons]]",
        f"source = {q(source)}",
        f"reason = {q(s.reason.replace('*', '?'))}",
        f"condition = {q(condition or '*')}",
        f"disposition = {q(s.disposition)}",
        f"khaos_reason_id = {q(s.khaos_reason_id)}",
        f"processing = {q(s.processing)}",
    ])


# --- SKUs ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CatalogueEntry:
    stock_id: str
    stock_code: str
    other_ref: str = ""
    description: str = ""
    barcodes: tuple[str, ...] = ()


@dataclass(frozen=True)
class SkuQuery:
    sku: str
    barcode: str = ""
    variant_id: str = ""
    title: str = ""


@dataclass(frozen=True)
class Candidate:
    key: str  # stock code (SKU) or customer URN
    confidence: float
    evidence: int
    why: str


def _combine(scores: list[float]) -> float:
    remaining = 1.0
    for s in scores:
        remaining *= 1 - max(0.0, min(s, 1.0))
    return 1 - remaining


def suggest_skus(query: SkuQuery, catalogue: Sequence[CatalogueEntry],
                 variant_history: dict[str, Counter[str]] | None = None,
                 limit: int = 5) -> list[Candidate]:
    """Catalogue items for an unknown SKU, best first.

    Signals: the line's barcode on an item (strong); the same shop variant went to that
    stock code on earlier returns (``variant_history``: variant id -> stock codes seen);
    the SKU's similarity to StockCode / OtherRef; the title's similarity to the description.
    """
    history = (variant_history or {}).get(query.variant_id, Counter()) if query.variant_id \
        else Counter()
    sku = query.sku.strip().upper()
    title = normalise(query.title)
    barcode = query.barcode.strip()
    scored: list[Candidate] = []
    for item in catalogue:
        signals: list[tuple[float, str]] = []
        if barcode and barcode in item.barcodes:
            signals.append((0.95, f"barcode {barcode} is on it"))
        seen = history.get(item.stock_code, 0)
        if seen:
            share = seen / sum(history.values())
            signals.append((0.9 * share, f"variant {query.variant_id} went to it on {seen} "
                                         "earlier return(s)"))
        if sku:
            code_sim = max(fuzz.ratio(sku, item.stock_code.upper()),
                           fuzz.ratio(sku, item.other_ref.upper()) if item.other_ref else 0)
            if code_sim >= 70:
                signals.append((code_sim / 100 * 0.8, f"code similarity {code_sim:.0f}%"))
        if title and item.description:
            title_sim = fuzz.token_set_ratio(title, normalise(item.description))
            if title_sim >= 70:
                signals.append((title_sim / 100 * 0.7, f"title similarity {title_sim:.0f}%"))
        if not signals:
            continue
        confidence = round(_combine([s for s, _ in signals]), 2)
        scored.append(Candidate(item.stock_code, confidence, len(signals) + max(seen - 1, 0),
                                "; ".join(w for _, w in signals)))
    scored.sort(key=lambda c: (-c.confidence, c.key))
    return scored[:limit]


# --- customers -------------------------------------------------------------------------


@dataclass(frozen=True)
class MirrorCustomer:
    email: str
    urn: str
    name: str = ""
    postcode: str = ""


@dataclass(frozen=True)
class CustomerQuery:
    email: str
    first_name: str = ""
    last_name: str = ""
    postcode: str = ""


def canonical_email(email: str) -> str:
    """Lower case, '+tag' dropped, and dots dropped for Gmail-style addresses."""
    local, _, domain = email.strip().casefold().partition("@")
    local = local.split("+", 1)[0]
    if domain in ("gmail.com", "googlemail.com"):
        local, domain = local.replace(".", ""), "gmail.com"
    return f"{local}@{domain}"


def _postcode(value: str) -> str:
    return re.sub(r"\s+", "", value).upper()


def suggest_customers(query: CustomerQuery, mirror: Sequence[MirrorCustomer],
                      limit: int = 5) -> list[Candidate]:
    """Khaos customers (URNs) that may be this customer, best first."""
    email = canonical_email(query.email) if query.email else ""
    domain = email.partition("@")[2]
    name = normalise(f"{query.first_name} {query.last_name}")
    postcode = _postcode(query.postcode)
    best: dict[str, Candidate] = {}
    for c in mirror:
        signals: list[tuple[float, str]] = []
        other = canonical_email(c.email)
        if email and other == email:
            signals.append((0.95, f"same address once +tags/dots are ignored ({c.email})"))
        elif email and domain and other.partition("@")[2] == domain and domain not in _FREEMAIL:
            local_sim = fuzz.ratio(email.partition("@")[0], other.partition("@")[0])
            if local_sim >= 80:
                signals.append((local_sim / 100 * 0.5, f"similar address at {domain}"))
        name_sim = fuzz.token_sort_ratio(name, normalise(c.name)) if name and c.name else 0.0
        same_postcode = bool(postcode) and postcode == _postcode(c.postcode)
        if name_sim >= 85 and same_postcode:
            signals.append((0.9, f"name '{c.name}' and postcode {c.postcode} match"))
        elif name_sim >= 85:
            signals.append((name_sim / 100 * 0.45, f"name '{c.name}' matches "
                                                    f"({name_sim:.0f}%), postcode does not"))
        elif same_postcode and name_sim >= 60:
            signals.append((0.5, f"postcode {c.postcode} matches, name is similar "
                                 f"({name_sim:.0f}%)"))
        if not signals:
            continue
        candidate = Candidate(c.urn, round(_combine([s for s, _ in signals]), 2), len(signals),
                              "; ".join(w for _, w in signals))
        if c.urn not in best or candidate.confidence > best[c.urn].confidence:
            best[c.urn] = candidate
    ranked = sorted(best.values(), key=lambda x: (-x.confidence, x.key))
    return ranked[:limit]


_FREEMAIL = {"gmail.com", "hotmail.com", "hotmail.co.uk", "outlook.com", "yahoo.com",
             "yahoo.co.uk", "icloud.com", "live.co.uk", "btinternet.com", "aol.com"}
