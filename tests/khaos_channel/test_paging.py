"""Paging of GET /khaos/returns over real HTTP: page_size, Sirion-Continuation, SpecificIDs."""

from collections.abc import Callable

from sqlalchemy import func, select

from returnbridge.flows.console.queries import return_view
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.khaos.serve import serve_page
from returnbridge.store.models import KhaosDelivery, KhaosDeliveryItem, ReturnRow
from tests.conftest import start_live_app
from tests.khaos_channel._ready import make_ready_returns

FIRST_CONTACT = "2019-12-31 12:00:00Z"


def test_2500_ready_returns_are_served_in_three_polls_without_loss_or_repetition(
        runtime_factory: Callable[..., Runtime]) -> None:
    app = start_live_app(runtime_factory, khaos={"page_size": 1000})
    try:
        refs = make_ready_returns(app.rt, 2500)
        pages: list[list[str]] = []
        continuation = FIRST_CONTACT
        with app.khaos() as khaos:
            khaos.timeout = 60
            for _ in range(5):
                response = khaos.get("/khaos/returns",
                                     headers={"Sirion-Continuation": continuation})
                assert response.status_code == 200
                pages.append([r["AssociatedRef"] for r in response.json()["Returns"]])
                continuation = response.headers.get("Sirion-Continuation", "")
                if not continuation:
                    break
            after = khaos.get("/khaos/returns").json()["Returns"]
    finally:
        app.stop()
    assert [len(p) for p in pages] == [1000, 1000, 500]
    served = [ref for page in pages for ref in page]
    assert served == refs  # oldest first, nothing lost, nothing twice
    assert after == []
    with app.rt.sessions() as s:
        assert s.scalar(select(func.count()).select_from(KhaosDeliveryItem)) == 2500
        assert set(s.scalars(select(ReturnRow.khaos_status))) == {"served"}
        continuations = s.execute(select(KhaosDelivery.request_continuation,
                                         KhaosDelivery.response_continuation)
                                  .order_by(KhaosDelivery.id)).all()
    # Each request echoed the previous answer's token.
    assert continuations[1][0] == continuations[0][1] and continuations[2][0] == continuations[1][1]


def test_specific_ids_returns_exactly_the_refs_asked_for(
        runtime_factory: Callable[..., Runtime]) -> None:
    app = start_live_app(runtime_factory, khaos={"page_size": 10})
    try:
        make_ready_returns(app.rt, 30)
        with app.khaos() as khaos:
            khaos.get("/khaos/returns")  # serves the 10 oldest
            asked = khaos.get("/khaos/returns",
                              headers={"SpecificIDs": '"LR-10003","LR-10025", LR-99999'})
            left = khaos.get("/khaos/returns")
    finally:
        app.stop()
    assert [r["AssociatedRef"] for r in asked.json()["Returns"]] == ["LR-10003", "LR-10025"]
    assert "Sirion-Continuation" not in asked.headers
    # LR-10025 was ready and is now served: a later normal poll does not repeat it.
    assert len(left.json()["Returns"]) == 10
    assert "LR-10025" not in [r["AssociatedRef"] for r in left.json()["Returns"]]
    view = return_view(app.rt, "LR-10003")
    assert view is not None and [d["redelivery"] for d in view["khaos_deliveries"]] == [
        False, True]


def test_a_repeated_continuation_means_our_answer_was_lost_and_is_served_again(
        runtime_factory: Callable[..., Runtime]) -> None:
    rt = runtime_factory(khaos={"page_size": 2})
    refs = make_ready_returns(rt, 5)
    first = serve_page(rt, continuation=FIRST_CONTACT)
    second = serve_page(rt, continuation=first.continuation)  # this answer never arrives
    retried = serve_page(rt, continuation=first.continuation)  # so Khaos asks again
    third = serve_page(rt, continuation=retried.continuation)
    assert first.refs == tuple(refs[:2]) and second.refs == tuple(refs[2:4])
    assert retried.refs == second.refs and retried.continuation
    assert third.refs == (refs[4],) and third.continuation == ""
    # A first-contact date sent again is not one of our tokens: nothing is repeated.
    assert serve_page(rt, continuation=FIRST_CONTACT).refs == ()
    view = return_view(rt, refs[2])
    assert view is not None and [d["redelivery"] for d in view["khaos_deliveries"]] == [
        False, True]
