"""Precision@1 of the three suggesters on the labelled sets in tests/fixtures/suggest/.

    uv run --frozen python bench/suggest.py

precision@1 = right top suggestion / suggestions made; coverage = cases with a suggestion /
all cases; accuracy@1 = (right top suggestion + right abstention) / all cases. The sets are
small and hand-written (see their README): read the figures as "works on typical cases".
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from returnbridge.domain.suggest import (
    CatalogueEntry,
    CustomerQuery,
    MirrorCustomer,
    ReasonEvidence,
    SkuQuery,
    suggest_customers,
    suggest_reason,
    suggest_skus,
)

SETS = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "suggest"


@dataclass(frozen=True)
class Score:
    name: str
    cases: int
    answered: int
    right: int  # right top suggestions
    abstained_right: int  # no suggestion where none is right

    @property
    def precision_at_1(self) -> float:
        return self.right / self.answered if self.answered else 0.0

    @property
    def coverage(self) -> float:
        return self.answered / self.cases if self.cases else 0.0

    @property
    def accuracy_at_1(self) -> float:
        return (self.right + self.abstained_right) / self.cases if self.cases else 0.0

    def line(self) -> str:
        return (f"{self.name:<10} precision@1 {self.precision_at_1:6.1%} "
                f"({self.right}/{self.answered})  coverage {self.coverage:6.1%}  "
                f"accuracy@1 {self.accuracy_at_1:6.1%}  ({self.cases} cases)")


def _score(name: str, results: list[tuple[str | None, str | None]]) -> Score:
    answered = [(got, want) for got, want in results if got is not None]
    return Score(name, len(results), len(answered),
                 sum(1 for got, want in answered if got == want),
                 sum(1 for got, want in results if got is None and want is None))


def reasons() -> Score:
    data = json.loads((SETS / "reasons.json").read_text())
    evidence = [ReasonEvidence(**e) for e in data["evidence"]]
    results = []
    for case in data["cases"]:
        s = suggest_reason(case["reason"], case["disposition"], evidence)
        results.append((s.khaos_reason_id if s else None, case["expected"]))
    return _score("reasons", results)


def skus() -> Score:
    data = json.loads((SETS / "skus.json").read_text())
    catalogue = [CatalogueEntry(e["stock_id"], e["stock_code"], e["other_ref"],
                                e["description"], tuple(e["barcodes"]))
                 for e in data["catalogue"]]
    history = {k: Counter(v) for k, v in data["variant_history"].items()}
    results = []
    for case in data["cases"]:
        found = suggest_skus(SkuQuery(case["sku"], case.get("barcode", ""),
                                      case.get("variant_id", ""), case.get("title", "")),
                             catalogue, history)
        results.append((found[0].key if found else None, case["expected"]))
    return _score("skus", results)


def customers() -> Score:
    data = json.loads((SETS / "customers.json").read_text())
    mirror = [MirrorCustomer(**m) for m in data["mirror"]]
    results = []
    for case in data["cases"]:
        found = suggest_customers(CustomerQuery(case["email"], case["first_name"],
                                                case["last_name"], case["postcode"]), mirror)
        results.append((found[0].key if found else None, case["expected"]))
    return _score("customers", results)


def main() -> None:
    print("Suggesters on the labelled sets in tests/fixtures/suggest/ (hand-written, small):")
    for score in (reasons(), skus(), customers()):
        print("  " + score.line())


if __name__ == "__main__":
    main()
