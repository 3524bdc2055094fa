"""The month-end pack: one streamed pass over the engine's rows writes every table.

Files (in ``out_dir``), for period P:
  reconciliation-P.json       summary + every difference (orphans included)
  reconciliation-P.xlsx       summary sheet first, then what a person reads (money as numbers
                              in a money format, frozen headers, autofilter, native charts);
                              the returns sheet is capped, the CSV holds everything
  reconciliation-P.html       self-contained report with inline SVG charts (no CDN)
  reconciliation-P-<table>.csv one CSV per table, formula injection neutralised
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from operator import itemgetter
from pathlib import Path
from typing import IO, Any

from returnbridge.domain.reconciliation import (
    INFO,
    ORPHANS,
    Category,
    from_minor,
)
from returnbridge.flows.reconcile.engine import (
    SPREADSHEET_FORMULA_STARTS,
    Row,
    Scope,
    split_differences,
)
from returnbridge.store.unit_of_work import UnitOfWork

FORMATS = ("xlsx", "csv", "html", "json")
XLSX_ROW_CAP = 5_000  # per sheet: what a person reads; the CSV holds everything
HTML_ROW_CAP = 500
_DANGEROUS = SPREADSHEET_FORMULA_STARTS

Progress = Callable[[int], None]

RETURN_COLUMNS: tuple[tuple[str, str, bool], ...] = (
    # (key, heading, money?)
    ("associated_ref", "Return", False), ("source", "Platform", False),
    ("order_ref", "Order", False), ("customer", "Customer", False),
    ("currency", "Currency", False), ("platform_state", "Platform state", False),
    ("platform_goods", "Platform goods", True), ("platform_refund", "Platform refund", True),
    ("platform_store_credit", "Platform store credit", True),
    ("exchange_credit", "Exchange credit", True), ("shipping_refund", "Shipping refund", True),
    ("handling_fee", "Handling fee", True), ("bonus", "Bonus", True),
    ("upsell", "Upsell", True), ("credit_note_code", "Credit note", False),
    ("credit_value", "Credit value", True), ("credit_stage", "Credit stage", False),
    ("credit_cleared", "Cleared", False), ("refunded", "Refunded (payments)", True),
    ("store_credit_issued", "Store credit issued", True),
    ("money_paid", "Money paid", True), ("status", "Status", False),
)
DIFF_COLUMNS: tuple[tuple[str, str, bool], ...] = (
    ("associated_ref", "Return", False), ("category", "Category", False),
    ("amount", "Amount", True), ("currency", "Currency", False),
    ("order_ref", "Order", False), ("credit_note_code", "Credit note", False),
    ("credit_value", "Credit value", True), ("money_paid", "Money paid", True),
    ("provider_ref", "Payment ref", False), ("next_action", "Next action", False),
)
LIABILITY_COLUMNS: tuple[tuple[str, str, bool], ...] = (
    ("customer", "Customer", False), ("currency", "Currency", False),
    ("credited", "Store credit credited (platform)", True),
    ("issued", "Store credit issued (payments)", True), ("returns", "Returns", False),
)
EXCHANGE_COLUMNS: tuple[tuple[str, str, bool], ...] = (
    ("associated_ref", "Return", False), ("order_ref", "Order", False),
    ("customer", "Customer", False), ("exchange_credit", "Exchange credit", True),
    ("upsell", "Upsell", True), ("credit_note_code", "Credit note", False),
    ("credit_value", "Credit value", True),
)
TAX_COLUMNS: tuple[tuple[str, str, bool], ...] = (
    ("associated_ref", "Return", False), ("credit_note_code", "Credit note", False),
    ("platform_tax", "Platform VAT", True), ("credit_tax", "Credit note VAT", True),
    ("amount", "Drift", True),
)


def safe_cell(value: Any) -> Any:
    """A CSV cell a spreadsheet will not run: text starting with = + - @ tab or CR gets a
    leading apostrophe. Numbers (Decimal, int) stay numbers."""
    if isinstance(value, str) and value.startswith(_DANGEROUS):
        return "'" + value
    return value


def _pence(v: int | None) -> str:
    """Integer pence as a decimal string, fast (the matched-returns CSV has every row)."""
    v = int(v or 0)
    sign = "-" if v < 0 else ""
    v = abs(v)
    return f"{sign}{v // 100}.{v % 100:02d}"


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


@dataclass
class Totals:
    returns: int = 0
    legs: dict[str, int] = field(default_factory=lambda: {
        "platform_goods": 0, "platform_refund": 0, "platform_store_credit": 0,
        "exchange_credit": 0, "credit_value": 0, "refunded": 0, "store_credit_issued": 0,
        "money_paid": 0})
    by_category: dict[str, list[int]] = field(default_factory=dict)  # cat -> [count, pence]
    matched: int = 0
    identity_breaks: int = 0

    def add_diff(self, category: str, amount: int) -> None:
        entry = self.by_category.setdefault(category, [0, 0])
        entry[0] += 1
        entry[1] += amount


def _status(row: Row) -> str:
    if Category.CREDIT_NOTE_WITHOUT_REFUND in row.diffs:
        return "orphan: credit note without refund"
    if Category.REFUND_WITHOUT_CREDIT_NOTE in row.diffs:
        return "orphan: refund without credit note"
    if row.diffs:
        return "differences: " + ", ".join(c.value for c in row.diffs)
    if not row.values["has_credit_note"] and not row.values["money_paid"]:
        return "open: no credit note, nothing paid yet"
    return "matched"


def _return_record(row: Row) -> dict[str, Any]:
    rec: dict[str, Any] = {}
    for key, _, money in RETURN_COLUMNS:
        if key == "status":
            rec[key] = _status(row)
        elif money:
            rec[key] = row.money(key)
        else:
            rec[key] = row.values.get(key)
    return rec


def _diff_records(row: Row) -> Iterator[dict[str, Any]]:
    credit_value, money_paid = row.money("credit_value"), row.money("money_paid")
    for cat, pence in row.diffs.items():
        yield {"associated_ref": row.associated_ref, "category": cat.value,
               "amount": from_minor(pence), "currency": row.values["currency"],
               "order_ref": row.values["order_ref"],
               "credit_note_code": row.values["credit_note_code"],
               "credit_value": credit_value, "money_paid": money_paid,
               "provider_ref": "", "next_action": INFO[cat].next_action}


def _orphan_payment_record(p: dict[str, Any]) -> dict[str, Any]:
    return {"associated_ref": "", "category": Category.REFUND_WITHOUT_CREDIT_NOTE.value,
            "amount": from_minor(int(p["amount"])), "currency": "",
            "order_ref": p["order_ref"], "credit_note_code": "", "credit_value": Decimal("0.00"),
            "money_paid": from_minor(int(p["amount"])), "provider_ref": p["provider_ref"],
            "next_action": INFO[Category.REFUND_WITHOUT_CREDIT_NOTE].next_action}


class _Csv:
    def __init__(self, path: Path, columns: tuple[tuple[str, str, bool], ...]) -> None:
        self.path = path
        self.columns = columns
        self._fh: IO[str] = path.open("w", newline="", encoding="utf-8")
        self._w = csv.writer(self._fh)
        self._w.writerow([h for _, h, _ in columns])

    def write(self, rec: dict[str, Any]) -> None:
        self._w.writerow([_plain(safe_cell(rec.get(k))) for k, _, _ in self.columns])

    def write_rows(self, rows: list[tuple[Any, ...]]) -> None:
        self._w.writerows(rows)

    def write_lines(self, lines: list[str]) -> None:
        """Rows already joined (``_plain_line``), each without its line end."""
        if lines:
            self._fh.write("\r\n".join(lines))
            self._fh.write("\r\n")

    def close(self) -> None:
        self._fh.close()


class _Sheet:
    """One XLSX sheet written row by row (XlsxWriter constant_memory)."""

    def __init__(self, book: Any, name: str, columns: tuple[tuple[str, str, bool], ...],
                 fmt: dict[str, Any], cap: int | None = None) -> None:
        self.ws = book.add_worksheet(name)
        self.columns = columns
        self.fmt = fmt
        self.cap = cap
        self.n = 0
        self.dropped = 0
        for i, (_, heading, money) in enumerate(columns):
            self.ws.write_string(0, i, heading, fmt["head"])
            self.ws.set_column(i, i, 16 if money else 22)
        self.ws.freeze_panes(1, 0)

    @property
    def full(self) -> bool:
        return self.cap is not None and self.n >= self.cap

    def write(self, rec: dict[str, Any]) -> None:
        if self.full:
            self.dropped += 1
            return
        self.n += 1
        for i, (key, _, money) in enumerate(self.columns):
            v = rec.get(key)
            if money:
                self.ws.write_number(self.n, i, float(v or 0), self.fmt["money"])
            elif isinstance(v, bool):
                self.ws.write_boolean(self.n, i, v)
            elif isinstance(v, int):
                self.ws.write_number(self.n, i, v)
            elif v is None:
                self.ws.write_blank(self.n, i, None)
            else:
                self.ws.write_string(self.n, i, str(_plain(v)))

    def finish(self) -> None:
        self.ws.autofilter(0, 0, max(self.n, 1), len(self.columns) - 1)
        if self.dropped:
            self.ws.write_string(self.n + 2, 0, f"{self.dropped} more rows in the CSV "
                                 "(the spreadsheet holds the first "
                                 f"{self.n}).", self.fmt["note"])


@dataclass
class PackResult:
    period: str
    summary: dict[str, Any]
    differences: list[dict[str, Any]]
    files: list[Path]


def _summary(scope: Scope, t: Totals, n_orphan_payments: int) -> dict[str, Any]:
    unexplained = t.by_category.get(Category.UNEXPLAINED.value, [0, 0])
    return {
        "period": scope.period, "source": scope.source,
        "returns": t.returns, "matched": t.matched,
        "legs": {k: str(from_minor(v)) for k, v in t.legs.items()},
        "categories": {c: {"count": n, "amount": str(from_minor(a))}
                       for c, (n, a) in sorted(t.by_category.items())},
        "orphan_payments_unattributed": n_orphan_payments,
        "residual_unexplained": str(from_minor(unexplained[1])),
        "residual_unexplained_count": unexplained[0],
        "identity_breaks": t.identity_breaks,
    }


_BOOL_TEXT = {True: "True", False: "False"}  # 0 and 1 (SQLite) hash as False and True


class _PenceText(dict[int, str]):
    """Integer pence -> decimal text, remembered (a month repeats the same prices)."""

    def __missing__(self, pence: int) -> str:
        text = _pence(pence)
        if len(self) < 100_000:
            self[pence] = text
        return text


_MONEY_TEXT = _PenceText()


def _csv_cells(r: Sequence[Any], status: str, m: _PenceText = _MONEY_TEXT,
               b: dict[Any, str] = _BOOL_TEXT) -> tuple[Any, ...]:
    """One matched-returns CSV row from the engine's row: ``RETURN_COLUMNS`` in order
    (``_check_columns`` keeps the statement's columns and these positions in step). Only
    for rows whose texts the statement found plain (``formula_like`` false)."""
    return (r[0], r[1], r[2], r[3], r[4], r[5], m[r[6]], m[r[7]], m[r[8]], m[r[9]], m[r[10]],
            m[r[11]], m[r[12]], m[r[13]], r[14], m[r[15]], r[16], b[r[17]], m[r[18]],
            m[r[19]], m[r[20]], status)


class _LineWriter:
    """CSV lines (no line end) as the csv module writes them: quoted where needed. One per
    pack (not shared between threads)."""

    def __init__(self) -> None:
        self._buffer = io.StringIO()
        # the default line end, so that a cell holding CR or LF is quoted
        self._writer = csv.writer(self._buffer)

    def line(self, cells: Sequence[Any]) -> str:
        self._buffer.seek(0)
        self._buffer.truncate()
        self._writer.writerow(cells)
        return self._buffer.getvalue()[:-2]


_STATUS_CELL = {status: _LineWriter().line([status]) for status in (
    "matched", "open: no credit note, nothing paid yet")}


def _plain_line(r: Sequence[Any], status: str, m: _PenceText = _MONEY_TEXT,
                b: dict[Any, str] = _BOOL_TEXT) -> str | None:
    """The row as one CSV line when none of its texts needs quoting (the common case),
    else None. Texts are the statement's plain ones (``formula_like`` false). The cells
    are ``_csv_cells``' (a test holds the two to the same output)."""
    texts = r[0] + r[1] + r[2] + r[3] + r[4] + r[5] + r[14] + r[16]
    if "," in texts or '"' in texts or "\n" in texts or "\r" in texts:
        return None
    return ",".join((r[0], r[1], r[2], r[3], r[4], r[5], m[r[6]], m[r[7]], m[r[8]], m[r[9]],
                     m[r[10]], m[r[11]], m[r[12]], m[r[13]], r[14], m[r[15]], r[16], b[r[17]],
                     m[r[18]], m[r[19]], m[r[20]], _STATUS_CELL[status]))


def _csv_cells_neutralised(r: Sequence[Any], status: str) -> tuple[Any, ...]:
    return tuple(safe_cell(c) for c in _csv_cells(r, status))


def _exchange_cells(r: Sequence[Any], m: _PenceText = _MONEY_TEXT) -> tuple[Any, ...]:
    """One exchanges CSV row (``EXCHANGE_COLUMNS``) from the engine's row."""
    return (r[0], r[2], r[3], m[r[9]], m[r[13]], r[14], m[r[15]])


_MONEY_AT = tuple(i for i, (_, _, money) in enumerate(RETURN_COLUMNS) if money)
assert _MONEY_AT == (6, 7, 8, 9, 10, 11, 12, 13, 15, 18, 19, 20), "update _csv_cells"
assert RETURN_COLUMNS[17][0] == "credit_cleared" and RETURN_COLUMNS[-1][0] == "status"
assert [k for k, _, _ in EXCHANGE_COLUMNS] == [RETURN_COLUMNS[i][0] for i in (
    0, 2, 3, 9, 13, 14, 15)], "update _exchange_cells"


def _check_columns(keys: list[str]) -> dict[str, int]:
    """The statement's columns by name, checked against what the writers assume."""
    stream = [k for k, _, _ in RETURN_COLUMNS[:-1]]
    if keys[:len(stream)] != stream or keys[-1] != "differences":
        raise RuntimeError(f"the engine's columns changed: {keys}")
    return {k: i for i, k in enumerate(keys)}


def _row(keys: list[str], r: Sequence[Any]) -> Row:
    values = dict(zip(keys, r, strict=True))
    values["credit_cleared"] = bool(values["credit_cleared"])
    values["has_credit_note"] = bool(values["has_credit_note"])
    diffs, values["platform_tax"], values["credit_tax"] = split_differences(r[-1])
    return Row(str(r[0]), values, diffs)


def _attention(row: Row, status: str, totals: Totals, differences: list[dict[str, Any]],
               writers: dict[str, list[Any]], sheet_returns: list[Any]) -> None:
    """A return with differences: the tables a person reads."""
    room = [w for w in sheet_returns if not w.full]
    if room:
        rec = _return_record(row)
        rec["status"] = status
        for w in room:
            w.write(rec)
    else:
        for w in sheet_returns:
            w.dropped += 1
    for d in _diff_records(row):
        totals.add_diff(d["category"], row.diffs[Category(d["category"])])
        differences.append(d)
        for w in writers["differences"]:
            w.write(d)
        if d["category"] == Category.TAX.value:
            t = {"associated_ref": row.associated_ref,
                 "credit_note_code": row.values["credit_note_code"],
                 "platform_tax": row.money("platform_tax"),
                 "credit_tax": row.money("credit_tax"), "amount": d["amount"]}
            for w in writers["tax"]:
                w.write(t)


def build(uow: UnitOfWork, scope: Scope, out_dir: Path | None = None,
          formats: Iterable[str] = FORMATS, progress: Progress | None = None) -> PackResult:
    """Reconcile ``scope`` and (with ``out_dir``) write the pack. One pass over the rows."""
    formats = [f for f in formats if f]
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise ValueError(f"unknown format(s) {sorted(unknown)}; use {', '.join(FORMATS)}")
    writers: dict[str, list[Any]] = {"returns": [], "differences": [], "exchanges": [],
                                     "tax": [], "liability": []}
    files: list[Path] = []
    book: Any = None
    fmt: dict[str, Any] = {}
    stem = f"reconciliation-{scope.period}"
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        if "csv" in formats:
            for table, cols in (("returns", RETURN_COLUMNS), ("differences", DIFF_COLUMNS),
                                ("exchanges", EXCHANGE_COLUMNS), ("tax", TAX_COLUMNS),
                                ("liability", LIABILITY_COLUMNS)):
                name = {"returns": "matched-returns", "tax": "tax-drift",
                        "liability": "store-credit-liability"}.get(table, table)
                w = _Csv(out_dir / f"{stem}-{name}.csv", cols)
                writers[table].append(w)
                files.append(w.path)
        if "xlsx" in formats:
            import xlsxwriter

            path = out_dir / f"{stem}.xlsx"
            book = xlsxwriter.Workbook(str(path), {"constant_memory": True})
            fmt = {"head": book.add_format({"bold": True, "bg_color": "#DDEBF7",
                                            "bottom": 1}),
                   "money": book.add_format({"num_format": "#,##0.00;[Red]-#,##0.00"}),
                   "note": book.add_format({"italic": True}),
                   "title": book.add_format({"bold": True, "font_size": 14})}
            summary_ws = book.add_worksheet("Summary")
            writers["differences"].append(_Sheet(book, "Differences", DIFF_COLUMNS, fmt,
                                                 XLSX_ROW_CAP))
            # returns needing attention; every return is in the matched-returns CSV
            writers["returns"].append(_Sheet(book, "Returns to check", RETURN_COLUMNS, fmt,
                                             XLSX_ROW_CAP))
            writers["liability"].append(_Sheet(book, "Store credit liability",
                                               LIABILITY_COLUMNS, fmt, XLSX_ROW_CAP))
            writers["tax"].append(_Sheet(book, "Tax drift", TAX_COLUMNS, fmt, XLSX_ROW_CAP))
            writers["exchanges"].append(_Sheet(book, "Exchanges", EXCHANGE_COLUMNS, fmt,
                                               XLSX_ROW_CAP))
            files.append(path)

    totals = Totals()
    differences: list[dict[str, Any]] = []
    owed: dict[tuple[str, str], list[int]] = {}
    csv_returns = [w for w in writers["returns"] if isinstance(w, _Csv)]
    exchange_csvs = [w for w in writers["exchanges"] if isinstance(w, _Csv)]
    exchange_sheets = [w for w in writers["exchanges"] if isinstance(w, _Sheet)]
    sheet_returns = [w for w in writers["returns"] if not isinstance(w, _Csv)]
    leg_names = list(totals.legs)
    legs = [0] * len(leg_names)
    n = 0
    with uow.reconciliation.batches(scope) as (keys, batches):
        ix = _check_columns(keys)
        formula_i = ix["formula_like"]
        diff_i = ix["differences"]
        to_line = _LineWriter().line
        leg_get = [itemgetter(ix[k]) for k in leg_names]
        paid_i, value_i = ix["money_paid"], ix["credit_value"]
        has_c_i, exch_i, ups_i = ix["has_credit_note"], ix["exchange_credit"], ix["upsell"]
        psc_i, isc_i = ix["platform_store_credit"], ix["store_credit_issued"]
        cust_i, cur_i = ix["customer"], ix["currency"]
        for batch in batches:
            n += len(batch)
            for j, get in enumerate(leg_get):
                legs[j] += sum(map(get, batch))
            lines: list[str] = []  # matched-returns CSV lines, in the month's order
            exchanges: list[tuple[Any, ...]] = []
            for r in batch:
                row: Row | None = None
                if r[diff_i] is not None:
                    row = _row(keys, r)
                    if sum(row.diffs.values()) != r[paid_i] - r[value_i]:
                        totals.identity_breaks += 1  # cannot happen by construction; checked
                    status = _status(row)
                    _attention(row, status, totals, differences, writers, sheet_returns)
                elif r[has_c_i] or r[paid_i]:
                    totals.matched += 1
                    status = "matched"
                else:
                    status = "open: no credit note, nothing paid yet"
                line = None if (row is not None or r[formula_i]) else _plain_line(r, status)
                if line is None:
                    line = to_line(_csv_cells_neutralised(r, status) if r[formula_i]
                                   else _csv_cells(r, status))
                lines.append(line)
                if r[psc_i] or r[isc_i]:
                    entry = owed.setdefault((r[cust_i], r[cur_i]), [0, 0, 0])
                    entry[0] += r[psc_i]
                    entry[1] += r[isc_i]
                    entry[2] += 1
                if r[exch_i] or r[ups_i]:
                    cells = _exchange_cells(r)
                    exchanges.append(tuple(map(safe_cell, cells)) if r[formula_i] else cells)
                    for sheet in exchange_sheets:
                        if sheet.full:
                            sheet.dropped += 1
                        else:
                            sheet.write(_return_record(row or _row(keys, r)))
            for w in csv_returns:
                w.write_lines(lines)
            for w in exchange_csvs:
                w.write_rows(exchanges)
            if progress is not None:
                progress(len(batch))
    totals.returns = n
    for name, v in zip(leg_names, legs, strict=True):
        totals.legs[name] = int(v)
    orphan_payments = 0
    for p in uow.reconciliation.unattributed_payments(scope):
        orphan_payments += 1
        d = _orphan_payment_record(p)
        totals.add_diff(d["category"], int(p["amount"]))
        totals.legs["refunded"] += int(p["amount"])
        totals.legs["money_paid"] += int(p["amount"])
        differences.append(d)
        for w in writers["differences"]:
            w.write(d)
    for (customer, currency), (credited, issued, count) in sorted(
            owed.items(), key=lambda kv: (-kv[1][0], kv[0])):
        rec = {"customer": customer, "currency": currency, "credited": from_minor(credited),
               "issued": from_minor(issued), "returns": count}
        for w in writers["liability"]:
            w.write(rec)
    summary = _summary(scope, totals, orphan_payments)
    for writer in (w for table in writers.values() for w in table):
        if isinstance(writer, _Csv):
            writer.close()
        else:
            writer.finish()
    if book is not None:
        _summary_sheet(book, summary_ws, fmt, summary)
        book.close()
    if out_dir is not None and "json" in formats:
        path = out_dir / f"{stem}.json"
        # no indent: the C encoder (a month's differences are tens of thousands)
        path.write_text(json.dumps(to_json(summary, differences)), encoding="utf-8")
        files.append(path)
    if out_dir is not None and "html" in formats:
        path = out_dir / f"{stem}.html"
        path.write_text(render_html(summary, differences), encoding="utf-8")
        files.append(path)
    return PackResult(scope.period, summary, differences, files)


def to_json(summary: dict[str, Any], differences: list[dict[str, Any]]) -> dict[str, Any]:
    return {"summary": summary,
            "differences": [{k: _plain(v) for k, v in d.items()} for d in differences]}


def _summary_sheet(book: Any, ws: Any, fmt: dict[str, Any], s: dict[str, Any]) -> None:
    ws.set_column(0, 0, 34)
    ws.set_column(1, 2, 18)
    ws.write_string(0, 0, f"Returns reconciliation {s['period']} ({s['source']})", fmt["title"])
    ws.write_string(2, 0, "Unexplained residual", fmt["head"])
    ws.write_number(2, 1, float(s["residual_unexplained"]), fmt["money"])
    ws.write_string(3, 0, "Returns in the period", fmt["head"])
    ws.write_number(3, 1, s["returns"])
    ws.write_string(4, 0, "Matched without difference", fmt["head"])
    ws.write_number(4, 1, s["matched"])
    ws.write_string(6, 0, "Leg", fmt["head"])
    ws.write_string(6, 1, "Total", fmt["head"])
    r = 7
    for k, v in s["legs"].items():
        ws.write_string(r, 0, k.replace("_", " "))
        ws.write_number(r, 1, float(v), fmt["money"])
        r += 1
    r += 1
    first = r + 1
    ws.write_string(r, 0, "Category", fmt["head"])
    ws.write_string(r, 1, "Count", fmt["head"])
    ws.write_string(r, 2, "Amount", fmt["head"])
    for cat, e in s["categories"].items():
        r += 1
        ws.write_string(r, 0, cat)
        ws.write_number(r, 1, e["count"])
        ws.write_number(r, 2, float(e["amount"]), fmt["money"])
    ws.freeze_panes(1, 0)
    if s["categories"]:
        for col, title, pos in ((2, "Difference amount by category", "E3"),
                                (1, "Differences by category (count)", "E20")):
            chart = book.add_chart({"type": "bar"})
            chart.add_series({"name": title,
                              "categories": ["Summary", first, 0, r, 0],
                              "values": ["Summary", first, col, r, col]})
            chart.set_title({"name": title})
            chart.set_legend({"none": True})
            ws.insert_chart(pos, chart)


def _svg_bars(title: str, items: list[tuple[str, float]], unit: str) -> str:
    if not items:
        return f"<p>{html.escape(title)}: none.</p>"
    width, bar_h, label_w = 640, 22, 210
    top = max(abs(v) for _, v in items) or 1.0
    h = bar_h * len(items) + 30
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" '
             f'height="{h}" aria-label="{html.escape(title)}"><title>{html.escape(title)}'
             "</title>"]
    for i, (label, v) in enumerate(items):
        y = 20 + i * bar_h
        w = max(1.0, abs(v) / top * (width - label_w - 90))
        colour = "#c0392b" if v < 0 else "#2e86c1"
        parts.append(f'<text x="0" y="{y + 15}" font-size="12">{html.escape(label)}</text>'
                     f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{bar_h - 6}" '
                     f'fill="{colour}"/><text x="{label_w + w + 4:.1f}" y="{y + 15}" '
                     f'font-size="12">{v:,.2f}{unit}</text>')
    parts.append("</svg>")
    return "".join(parts)


def render_html(s: dict[str, Any], differences: list[dict[str, Any]]) -> str:
    e = html.escape
    cats = s["categories"]
    amount_chart = _svg_bars("Difference amount by category",
                             [(c, float(v["amount"])) for c, v in cats.items()], "")
    count_chart = _svg_bars("Differences by category (count)",
                            [(c, float(v["count"])) for c, v in cats.items()], "")
    legs = "".join(f"<tr><td>{e(k.replace('_', ' '))}</td><td class=n>{e(v)}</td></tr>"
                   for k, v in s["legs"].items())
    cat_rows = "".join(
        f"<tr><td>{e(c)}</td><td class=n>{v['count']}</td><td class=n>{e(v['amount'])}</td>"
        f"<td>{e(INFO[Category(c)].meaning)}</td></tr>" for c, v in cats.items())
    shown = differences[:HTML_ROW_CAP]
    diff_rows = "".join(
        f"<tr><td>{e(d['associated_ref'] or d['order_ref'])}</td><td>{e(d['category'])}</td>"
        f"<td class=n>{e(str(d['amount']))}</td><td>{e(d['credit_note_code'])}</td>"
        f"<td>{e(d['next_action'])}</td></tr>" for d in shown)
    more = (f"<p>{len(differences) - len(shown)} more differences in the CSV and XLSX.</p>"
            if len(differences) > len(shown) else "")
    orphans = sum(cats.get(o.value, {"count": 0})["count"] for o in ORPHANS)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Returns reconciliation {e(s['period'])}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px}}
th{{background:#ddebf7;text-align:left}}.n{{text-align:right;font-variant-numeric:tabular-nums}}
.big{{font-size:1.4em}}</style></head><body>
<h1>Returns reconciliation {e(s['period'])} ({e(s['source'])})</h1>
<p class=big id=residual>Unexplained residual: <b>{e(s['residual_unexplained'])}</b></p>
<p>{s['returns']} returns in the period; {s['matched']} matched without difference;
{orphans} orphans.</p>
<h2>Totals per leg</h2><table id=legs><tr><th>Leg</th><th>Total</th></tr>{legs}</table>
<h2>Differences by category</h2>
<table id=categories><tr><th>Category</th><th>Count</th><th>Amount</th><th>Meaning</th></tr>
{cat_rows}</table>
<figure>{amount_chart}</figure><figure>{count_chart}</figure>
<h2>Differences</h2><table id=differences><tr><th>Return / order</th><th>Category</th>
<th>Amount</th><th>Credit note</th><th>Next action</th></tr>{diff_rows}</table>{more}
</body></html>
"""

