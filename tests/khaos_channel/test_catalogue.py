"""Mirror lookups used by validation: find_item per mapping type, levels with their age,
nearest candidates for sku_mismatch, and the customer email -> URN table."""

from datetime import timedelta
from decimal import Decimal

from returnbridge.erp.khaos.pushes import StockItemRecord, StockLevelRecord
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.store import catalogue
from returnbridge.store.catalogue import CustomerRecord
from returnbridge.store.models import utcnow


def item(stock_id: str, code: str, other: str = "", barcodes: tuple[str, ...] = (),
         **options: bool) -> StockItemRecord:
    return StockItemRecord(stock_id, code, other, f"item {code}", barcodes,
                           options.get("web", True), options.get("discontinued", False),
                           True, raw={"StockID": stock_id})


def load(rt: Runtime) -> None:
    with rt.sessions() as s, s.begin():
        catalogue.Catalogue(s).upsert_stock_items([
            item("1", "TEE-BLK-M", "SHOP-TEE-M", ("5000000000011",)),
            item("2", "TEE-BLK-L", "SHOP-TEE-L", ("5000000000028",)),
            item("3", "JEAN-IND-32", "", ("5000000000035",)),
            item("4", "OLD-TEE-BLK-M", "", discontinued=True),
        ])


def test_find_item_honours_the_mapping_type(runtime: Runtime) -> None:
    load(runtime)
    with runtime.sessions() as s:
        def found(sku: str, mapping: str) -> str | None:
            hit = catalogue.Catalogue(s).find_item(sku, mapping)
            return hit.stock_id if hit else None

        assert found("TEE-BLK-M", "StockCode") == "1"
        assert found("SHOP-TEE-M", "StockCode") is None
        assert found("SHOP-TEE-M", "OtherRef") == "1"
        assert found("5000000000028", "Barcode") == "2"
        assert [found(s_, "Automatic") for s_ in ("TEE-BLK-L", "SHOP-TEE-L", "5000000000035",
                                                    "nope")] == ["2", "2", "3", None]
        assert found("", "StockCode") is None


def test_nearest_candidates_say_which_field_matched(runtime: Runtime) -> None:
    load(runtime)
    with runtime.sessions() as s:
        other_ref = catalogue.Catalogue(s).nearest_candidates("shop-tee-m")
        typo = catalogue.Catalogue(s).nearest_candidates("TEE-BLK-MM", limit=2)
        barcode = catalogue.Catalogue(s).nearest_candidates("5000000000010", limit=1)
        assert catalogue.Catalogue(s).nearest_candidates("ZZZZZZZZZ") == []
    assert (other_ref[0].stock_id, other_ref[0].field, other_ref[0].score) == ("1", "OtherRef",
                                                                                 1.0)
    assert [c.stock_code for c in typo] == ["TEE-BLK-M", "TEE-BLK-L"]
    assert typo[0].score > typo[1].score and typo[0].field == "StockCode"
    assert (barcode[0].stock_id, barcode[0].field, barcode[0].value) == (
        "1", "Barcode", "5000000000011")


def test_level_reports_its_age(runtime: Runtime) -> None:
    long_ago = utcnow() - timedelta(hours=30)
    with runtime.sessions() as s, s.begin():
        catalogue.Catalogue(s).upsert_stock_levels([
            StockLevelRecord("1", "1", "TEE-BLK-M", Decimal(3), Decimal(0), False)],
            now=long_ago)
    with runtime.sessions() as s:
        reading = catalogue.Catalogue(s).level("1", 1)
    assert reading is not None and reading.available == Decimal(3)
    assert reading.is_stale(timedelta(hours=24)) and not reading.is_stale(timedelta(days=2))


def test_customers_are_found_by_email_whatever_the_case(runtime: Runtime) -> None:
    with runtime.sessions() as s, s.begin():
        mirror = catalogue.Catalogue(s)
        first = mirror.upsert_customers([CustomerRecord("Ann@Example.com", "ANN01", "Ann"),
                                         CustomerRecord("bob@example.com", "BOB01")])
        again = mirror.upsert_customers([CustomerRecord("ann@example.com", "ANN01", "Ann")])
        moved = mirror.upsert_customers([CustomerRecord("bob@example.com", "BOB02")],
                                        origin="operator")
    assert (first.inserted, again.unchanged, moved.updated) == (2, 1, 1)
    with runtime.sessions() as s:
        assert catalogue.Catalogue(s).find_urn_by_email(" ANN@example.COM ") == "ANN01"
        assert catalogue.Catalogue(s).find_urn_by_email("bob@example.com") == "BOB02"
        assert catalogue.Catalogue(s).find_urn_by_email("nobody@example.com") is None
        assert catalogue.Catalogue(s).find_urn_by_email("") is None
