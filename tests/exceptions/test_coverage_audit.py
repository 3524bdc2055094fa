import csv
import io
from datetime import timedelta
from typing import Any

from returnbridge.domain.policy import DefaultReason, PolicyConfig
from returnbridge.domain.reasons import Processing
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.exceptions.coverage import audit_report, coverage_report
from returnbridge.store.models import utcnow
from tests.exceptions._seed import add_item, add_level, add_return

# The conftest mapping: "*damaged*" writes off (7), everything else restocks (6).
STRICT = {"mapping": {"reasons": [
    {"source": "loop", "reason": "Too small", "khaos_reason_id": "6", "processing": "restock"},
    {"reason": "*damaged*", "khaos_reason_id": "7", "processing": "write_off"},
]}}


def seed(rt: Runtime) -> None:
    with rt.sessions() as s, s.begin():
        add_return(s, "LR-1", [("TEE-BLK-M", "Too small", "", "restock"),
                               ("SCARF-GRY", "Arrived damaged", "", "write_off")],
                   quantity=2)
        add_return(s, "LR-2", [("TEE-BLK-M", "Too small", "", "restock")],
                   exchanges=("JEAN-IND-34",))
        add_return(s, "LR-3", [("MYSTERY-1", "Changed my mind", "", "restock")],
                   exchanges=("BOOT-TAN-9",))
        add_return(s, "LR-4", [("0123456789012", "Changed my mind", "worn", "restock")])
        add_return(s, "ZZ-5", [("TEE-BLK-L", "Arrived damaged", "A", "restock")],
                   source="zigzag")
        # Outside the 90-day window: never reported.
        add_return(s, "LR-OLD", [("ANCIENT", "Ancient reason", "", "restock")],
                   seen=utcnow() - timedelta(days=120))
        add_item(s, "1", "TEE-BLK-M")
        add_item(s, "2", "SCARF-GRY-KHAOS", other_ref="SCARF-GRY")
        add_item(s, "3", "JEAN-IND-34", web=False)
        add_item(s, "4", "BOOT-TAN-9", discontinued=True)
        add_item(s, "5", "TEE-BLK-L")
        add_item(s, "6", "SHIRT", barcodes=("0123456789012",))
        add_level(s, "1", "TEE-BLK-M", "1", "4", timedelta(hours=2))
        add_level(s, "3", "JEAN-IND-34", "1", "7", timedelta(days=3))


def test_every_reason_seen_is_reported_with_its_mapping_and_reach(
        runtime_factory: Any) -> None:
    rt = runtime_factory(**STRICT)
    seed(rt)
    report = audit_report(rt)
    rows = {(r.source, r.reason, r.condition, r.disposition):
            (r.status, r.returns, r.units, r.khaos_reason_id, r.mapped_by)
            for r in report.reasons}
    assert rows == {
        ("loop", "Too small", "", "restock"): ("mapped", 2, 3, "6", "rule 1"),
        ("loop", "Arrived damaged", "", "write_off"): ("mapped", 1, 2, "7", "rule 2"),
        ("loop", "Changed my mind", "", "restock"): ("unmapped", 1, 1, "", ""),
        ("loop", "Changed my mind", "worn", "restock"): ("unmapped", 1, 1, "", ""),
        # Graded resellable but the matching rule writes it off.
        ("zigzag", "Arrived damaged", "A", "restock"): ("unsafe", 1, 1, "7", "rule 2"),
    }
    assert [r.status for r in report.reasons][:3] == ["unmapped", "unmapped", "unsafe"]
    assert report.returns_seen == 5


def test_catalogue_gaps_and_stale_levels(runtime_factory: Any) -> None:
    rt = runtime_factory(khaos={"sku_mapping": "Automatic"})
    seed(rt)
    report = audit_report(rt, stale_hours=24)
    assert [(x.sku, x.problem, x.returns) for x in report.exchange_skus] == [
        ("BOOT-TAN-9", "discontinued", 1), ("JEAN-IND-34", "not_published_to_web", 1)]
    # OtherRef and barcode matches count under Automatic; the ancient return is out of the
    # window.
    assert [(u.sku, u.seen_on, u.example_ref) for u in report.unknown_skus] == [
        ("MYSTERY-1", "returned", "LR-3")]
    assert [(s.stock_code, s.site_id) for s in report.stale_levels] == [("JEAN-IND-34", "1")]
    assert report.stale_levels[0].age_hours >= 72
    summary = report.summary()
    assert "1 mapped to a reason with the wrong stock effect (1 return(s) affected)" in summary
    assert "2 exchange SKU(s) Khaos would refuse" in summary
    assert "1 SKU(s) unknown to Khaos" in summary and "1 stock level(s) older than 24h" in summary
    assert "Next: add or fix [[mapping.reasons]]" in summary


def test_unknown_skus_follow_the_configured_sku_mapping(runtime: Runtime) -> None:
    seed(runtime)  # [khaos].sku_mapping = StockCode: OtherRef and barcode do not match
    report = audit_report(runtime)
    assert [(u.sku, u.hint) for u in report.unknown_skus] == [
        ("0123456789012", "is the Barcode of SHIRT, but [khaos].sku_mapping is StockCode"),
        ("MYSTERY-1", ""),
        ("SCARF-GRY", "is the OtherRef of SCARF-GRY-KHAOS, but [khaos].sku_mapping is "
                      "StockCode")]


def test_per_disposition_defaults_count_as_mapped() -> None:
    config = PolicyConfig(defaults=(DefaultReason("restock", "6", Processing.RESTOCK),))
    from returnbridge.flows.exceptions.coverage import map_line as _map

    assert _map(config, "loop", "Anything", "", "restock") == (
        "mapped", "6", "restock", "default for restock")
    assert _map(config, "loop", "Anything", "", "write_off")[0] == "unmapped"


def test_empty_mirror_is_explained_not_listed_as_unknown(runtime: Runtime) -> None:
    with runtime.sessions() as s, s.begin():
        add_return(s, "LR-9", [("TEE-BLK-M", "Too small", "", "restock")])
    report = audit_report(runtime)
    assert report.unknown_skus == [] and report.stale_levels == []
    assert any("catalogue mirror is empty" in n for n in report.notes)
    assert report.summary().startswith("All clear")


def test_json_and_csv_carry_every_section(runtime_factory: Any) -> None:
    rt = runtime_factory(**STRICT)
    seed(rt)
    with rt.unit_of_work() as uow:
        report = coverage_report(uow, PolicyConfig(rules=rt.settings.mapping.rules()),
                                 stale_after=timedelta(hours=24))
    data = report.to_dict()
    assert data["summary"] == report.summary() and len(data["reasons"]) == 5
    rows = list(csv.DictReader(io.StringIO(report.to_csv())))
    sections = [r["section"] for r in rows]
    assert sections.count("reason") == 5 and sections.count("exchange_sku") == 2
    assert sections.count("unknown_sku") == 3 and sections.count("stale_level") == 1
    scarf = next(r for r in rows if r["sku"] == "SCARF-GRY")
    assert "OtherRef of SCARF-GRY-KHAOS" in scarf["detail"]
    unmapped = [r for r in rows if r["section"] == "reason" and r["status"] == "unmapped"]
    assert {r["reason"] for r in unmapped} == {"Changed my mind"}
