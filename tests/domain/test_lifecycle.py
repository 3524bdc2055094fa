from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from returnbridge.domain.khaos_status import (
    DELIVERED,
    IllegalTransition,
    KhaosStatus,
    can_move,
    move,
)
from returnbridge.domain.lifecycle import TERMINAL, ReturnState, advance, is_backwards, rank

states = st.sampled_from(list(ReturnState))


@given(st.lists(states, min_size=1, max_size=20))
def test_state_never_moves_backwards_whatever_the_event_order(events: list[ReturnState]) -> None:
    current = None
    for incoming in events:
        nxt = advance(current, incoming)
        if current is not None:
            assert rank(nxt) >= rank(current)
            if current in TERMINAL:
                assert nxt == current
        current = nxt


def test_late_retry_of_an_older_state_is_recorded_but_ignored() -> None:
    assert advance(ReturnState.RECEIVED, ReturnState.REQUESTED) == ReturnState.RECEIVED
    assert is_backwards(ReturnState.RECEIVED, ReturnState.REQUESTED)
    assert not is_backwards(ReturnState.REQUESTED, ReturnState.RECEIVED)


def test_first_terminal_state_wins() -> None:
    assert advance(ReturnState.CANCELLED, ReturnState.CLOSED) == ReturnState.CANCELLED
    assert advance(ReturnState.CLOSED, ReturnState.CANCELLED) == ReturnState.CLOSED


def test_review_pauses_without_going_back_to_requested() -> None:
    assert advance(ReturnState.REQUESTED, ReturnState.REVIEW) == ReturnState.REVIEW
    assert advance(ReturnState.REVIEW, ReturnState.REQUESTED) == ReturnState.REVIEW
    assert advance(ReturnState.REVIEW, ReturnState.CLOSED) == ReturnState.CLOSED


def test_khaos_status_machine_allows_the_happy_path() -> None:
    path = [KhaosStatus.PENDING, KhaosStatus.READY, KhaosStatus.SERVED, KhaosStatus.IMPORTED,
            KhaosStatus.CREDIT_CONFIRMED, KhaosStatus.REFUND_RECORDED, KhaosStatus.DONE]
    for a, b in pairwise(path):
        assert move(a, b) == b


@given(st.sampled_from(sorted(DELIVERED)), st.sampled_from(
    [KhaosStatus.PENDING, KhaosStatus.HELD, KhaosStatus.READY]))
def test_a_delivered_return_can_never_become_servable_again(
        current: KhaosStatus, target: KhaosStatus) -> None:
    assert not can_move(current, target)


def test_illegal_transition_names_both_ends() -> None:
    try:
        move(KhaosStatus.SERVED, KhaosStatus.READY)
    except IllegalTransition as exc:
        assert "served" in str(exc) and "ready" in str(exc)
    else:
        raise AssertionError("expected IllegalTransition")
