"""The pack opens: XLSX read back (sheets, money as numbers, frozen headers, autofilter,
native charts), CSV formula injection neutralised, HTML rendered in a real browser."""

from __future__ import annotations

import csv
import json
import zipfile
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
import sqlalchemy as sa

from returnbridge.flows.reconcile import pack
from returnbridge.flows.reconcile.engine import Scope
from returnbridge.sandbox.month import generate, load_legs
from returnbridge.store.db import make_engine, session_factory
from returnbridge.store.models import ReconPlatformLeg
from returnbridge.store.unit_of_work import UnitOfWork

PERIOD = "2026-10"
EVIL = ("=HYPERLINK(\"http://evil\",\"x\")", "+1+2", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd")
QUOTED = ("Smith, Jane <jane@example.com>", 'Jo "JJ" Bloggs', "line\nbreak@example.com")


@pytest.fixture
def written(tmp_path: Path) -> tuple[pack.PackResult, Path]:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    from returnbridge.store.migrate import upgrade

    engine = make_engine(url)
    upgrade(engine)
    month = generate(PERIOD, 400, seed=3)
    # customers whose e-mail a spreadsheet would run as a formula
    store_credit = [p for p in month.platform if p["store_credit"]][:len(EVIL)]
    for p, evil in zip(store_credit, EVIL, strict=True):
        p["customer"] = evil
    # texts the CSV must quote: a comma, a double quote, a line break
    plain = [p for p in month.platform if not p["store_credit"]][:len(QUOTED)]
    for p, text in zip(plain, QUOTED, strict=True):
        p["customer"] = text
    with engine.begin() as conn:
        load_legs(conn, month)
        assert conn.execute(sa.select(sa.func.count()).select_from(
            ReconPlatformLeg.__table__)).scalar_one() == 400
    out = tmp_path / "pack"
    with UnitOfWork(session_factory(engine)) as uow:
        result = pack.build(uow, Scope(PERIOD), out)
    engine.dispose()
    return result, out


def test_xlsx_reads_back_for_finance(written: tuple[pack.PackResult, Path]) -> None:
    result, out = written
    path = out / f"reconciliation-{PERIOD}.xlsx"
    book = openpyxl.load_workbook(path)
    assert book.sheetnames[0] == "Summary"
    assert {"Differences", "Returns to check", "Store credit liability", "Tax drift",
            "Exchanges"} <= set(book.sheetnames)
    summary = book["Summary"]
    assert summary["B3"].value == 0  # unexplained residual, a number
    assert "0.00" in summary["B3"].number_format
    diffs = book["Differences"]
    assert diffs.freeze_panes == "A2"
    assert diffs.auto_filter.ref and diffs.auto_filter.ref.startswith("A1:")
    headings = [c.value for c in diffs[1]]
    amount_col = headings.index("Amount")
    amounts = [r[amount_col] for r in diffs.iter_rows(min_row=2, values_only=True)
               if r[0] is not None or r[4] is not None]
    assert len(amounts) == len(result.differences)
    assert all(isinstance(a, int | float) for a in amounts)
    assert "0.00" in diffs.cell(row=2, column=amount_col + 1).number_format
    with zipfile.ZipFile(path) as z:
        charts = [n for n in z.namelist() if n.startswith("xl/charts/chart")]
        assert len(charts) == 2
        rels = z.read("xl/worksheets/_rels/sheet1.xml.rels").decode()
        assert "drawing" in rels  # the charts sit on the summary sheet


def test_csv_cells_cannot_run_as_formulas(written: tuple[pack.PackResult, Path]) -> None:
    _, out = written
    with (out / f"reconciliation-{PERIOD}-store-credit-liability.csv").open(newline="") as fh:
        customers = [row["Customer"] for row in csv.DictReader(fh)]
    for evil in EVIL:
        assert "'" + evil in customers
    assert not any(c.startswith(("=", "+", "-", "@", "\t", "\r")) for c in customers)
    with (out / f"reconciliation-{PERIOD}-differences.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    negative = [r["Amount"] for r in rows if r["Amount"].startswith("-")]
    assert negative, "amounts stay numbers (a minus sign is not neutralised on a number)"
    assert pack.safe_cell("=1+1") == "'=1+1"
    assert pack.safe_cell("plain") == "plain"


def test_json_has_the_contracted_fields(written: tuple[pack.PackResult, Path]) -> None:
    _, out = written
    data = json.loads((out / f"reconciliation-{PERIOD}.json").read_text())
    assert data["summary"]["residual_unexplained"] == "0.00"
    cats = {d["category"] for d in data["differences"]}
    assert {"credit_note_without_refund", "refund_without_credit_note"} <= cats
    for d in data["differences"]:
        assert {"associated_ref", "category", "amount"} <= d.keys()
        assert isinstance(d["amount"], str)


def test_html_renders_in_a_real_browser(written: tuple[pack.PackResult, Path]) -> None:
    from playwright.sync_api import sync_playwright

    result, out = written
    page_path = out / f"reconciliation-{PERIOD}.html"
    html = page_path.read_text()
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                    args=["--no-sandbox"])
        try:
            page = browser.new_page()
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_path.as_uri())
            assert "Unexplained residual: 0.00" in page.inner_text("#residual")
            assert page.locator("svg").count() == 2
            bars = page.locator("svg rect").count()
            assert bars == 2 * len(result.summary["categories"])
            box = page.locator("svg").first.bounding_box()
            assert box is not None and box["width"] > 100
            rows = page.locator("#differences tr").count()
            assert rows == len(result.differences) + 1
            assert all(u.startswith("file://") for u in requests)
        finally:
            browser.close()


def test_matched_returns_csv_holds_every_return_exactly(
        written: tuple[pack.PackResult, Path]) -> None:
    """Every return once, texts quoted or neutralised as the csv module would, money as the
    legs' pence in pounds, the status of each row."""
    result, out = written
    with (out / f"reconciliation-{PERIOD}-matched-returns.csv").open(newline="",
                                                                    encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == result.summary["returns"] == 400
    assert len({r["Return"] for r in rows}) == 400
    customers = {r["Customer"] for r in rows}
    assert set(QUOTED) <= customers
    assert {"'" + evil for evil in EVIL} <= customers
    assert not any(c.startswith(("=", "+", "-", "@", "\t", "\r")) for c in customers)
    goods = sum((Decimal(r["Platform goods"]) for r in rows), Decimal(0))
    assert str(goods) == result.summary["legs"]["platform_goods"]
    paid = sum((Decimal(r["Money paid"]) for r in rows), Decimal(0))
    orphans = sum((d["amount"] for d in result.differences if not d["associated_ref"]),
                  Decimal(0))
    assert paid + orphans == Decimal(result.summary["legs"]["money_paid"])
    statuses = {r["Status"] for r in rows}
    assert "matched" in statuses
    assert any(s.startswith("differences: ") for s in statuses)
    matched = sum(1 for r in rows if r["Status"] == "matched")
    assert matched == result.summary["matched"]
    assert {r["Cleared"] for r in rows} <= {"True", "False"}


def test_the_joined_line_is_what_the_csv_module_writes() -> None:
    """The matched-returns CSV joins plain rows itself; it must write what csv would."""
    import io

    row = ("LR-1", "loop", "#1001", "jo@example.com", "GBP", "closed", 2450, -5, 0, 1, 99,
           100, 0, 12345678, "CN-1", 2450, "Processed", 1, 2450, 0, 2450)
    for status in ("matched", "open: no credit note, nothing paid yet"):
        buf = io.StringIO()
        csv.writer(buf).writerow(pack._csv_cells(row, status))
        assert pack._plain_line(row, status) + "\r\n" == buf.getvalue()
    assert pack._plain_line(("a,b", *row[1:]), "matched") is None  # the csv module quotes it
    assert pack._csv_cells(row, "matched")[7] == "-0.05"
