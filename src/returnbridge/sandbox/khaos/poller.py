"""A Khaos Control channel emulator: it fetches our configuration file with HTTP Basic,
polls CReturnDownload following ``Sirion-Continuation``, and imports each return the way
Khaos does: one bad return fails alone, good ones import regardless."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class ImportFailure:
    associated_ref: str
    reason: str


@dataclass
class ImportedReturn:
    associated_ref: str
    urn: str
    credit_note_code: str
    items: list[tuple[str, float, str]]  # (sku, quantity, reason id)
    exchange_items: list[tuple[str, float]]
    processed: bool


@dataclass
class KhaosSandbox:
    config_url: str
    username: str
    password: str
    catalogue: set[str] = field(default_factory=set)
    customers: set[str] = field(default_factory=set)
    reasons: set[str] = field(default_factory=set)
    timeout: float = 10.0
    imported: dict[str, ImportedReturn] = field(default_factory=dict)
    failures: list[ImportFailure] = field(default_factory=list)
    polls: int = 0
    config: dict[str, Any] = field(default_factory=dict)
    _next_credit: int = 1

    def _client(self) -> httpx.Client:
        return httpx.Client(auth=(self.username, self.password), timeout=self.timeout)

    def fetch_config(self) -> dict[str, Any]:
        with self._client() as client:
            response = client.get(self.config_url)
            response.raise_for_status()
            self.config = response.json()["EndpointConfig"]
        return self.config

    def poll(self, max_pages: int = 50) -> int:
        """One scheduled poll: fetch pages while a continuation is offered; import them."""
        if not self.config:
            self.fetch_config()
        endpoint = self.config["CReturnDownload"]
        if endpoint["Format"] != "JSON":
            raise RuntimeError("this sandbox poller reads JSON")
        imported = 0
        continuation = "2019-12-31 12:00:00Z"  # what Khaos sends on first contact
        with self._client() as client:
            for _ in range(max_pages):
                response = client.get(endpoint["URL"],
                                      headers={"Sirion-Continuation": continuation})
                response.raise_for_status()
                self.polls += 1
                imported += self.import_document(response.json())
                continuation = response.headers.get("Sirion-Continuation", "")
                if not continuation:
                    break
        return imported

    def import_document(self, doc: dict[str, Any]) -> int:
        if doc.get("ApiVersion") != 1000:
            raise ValueError(f"ApiVersion must be 1000, got {doc.get('ApiVersion')!r}")
        count = 0
        for ret in doc.get("Returns", []):
            reason = self._refuse(ret)
            if reason:
                self.failures.append(ImportFailure(str(ret.get("AssociatedRef", "?")), reason))
                continue
            code = f"CN{self._next_credit:05d}"
            self._next_credit += 1
            self.imported[ret["AssociatedRef"]] = ImportedReturn(
                associated_ref=ret["AssociatedRef"], urn=ret["URN"], credit_note_code=code,
                items=[(i["SKU"], float(i["Quantity"]), i["ReturnReason"]["ID"])
                       for i in ret["ReturnedItems"]],
                exchange_items=[(i["SKU"], float(i["Quantity"]))
                                for i in ret.get("ExchangeItems", [])],
                processed=bool(ret.get("ProcessReturn", False)),
            )
            count += 1
        return count

    def _refuse(self, ret: dict[str, Any]) -> str:
        """Why Khaos would fail this return's import, or ""."""
        if _has_null(ret):
            return "null value in the return"
        ref = ret.get("AssociatedRef")
        if not ref:
            return "AssociatedRef missing"
        if ref in self.imported:
            return f"duplicate AssociatedRef {ref}"
        urn = ret.get("URN", "")
        if not urn or (self.customers and urn not in self.customers):
            return f"unknown customer URN {urn!r}"
        for contact in ("InvoiceAddress", "InvoiceContact"):
            if contact not in ret:
                return f"{contact} missing"
        for key in ("Line1", "Town", "Country"):
            if key not in ret["InvoiceAddress"]:
                return f"InvoiceAddress.{key} missing"
        items = ret.get("ReturnedItems") or []
        if not items:
            return "no ReturnedItems"
        for item in items:
            sku = item.get("SKU", "")
            if self.catalogue and sku not in self.catalogue:
                return f"unknown SKU {sku!r} under mapping StockCode"
            rid = (item.get("ReturnReason") or {}).get("ID", "")
            if not rid or (self.reasons and rid not in self.reasons):
                return f"unknown return reason {rid!r}"
        for item in ret.get("ExchangeItems", []):
            if self.catalogue and item.get("SKU") not in self.catalogue:
                return f"unknown exchange SKU {item.get('SKU')!r}"
        return ""


def _has_null(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, dict):
        return any(_has_null(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_null(v) for v in value)
    return False
