"""The stream state machine on its own: every (state, event) pair of the table, and the two
credit windows (what we may send, what the peer may send us) with their batching of grants."""

from __future__ import annotations

import itertools

import pytest

from relay.wire.codec import ProtocolError
from relay.wire.stream import (
    MAX_WINDOW,
    TERMINAL,
    TRANSITIONS,
    Event,
    FlowControlError,
    LocalStreamError,
    State,
    Stream,
    StreamError,
)

RECEIVED = {Event.RECV_DATA, Event.RECV_END, Event.RECV_RESET}
ALL_PAIRS = list(itertools.product(State, Event))
LEGAL = [pair for pair in ALL_PAIRS if pair in TRANSITIONS]
ILLEGAL = [pair for pair in ALL_PAIRS if pair not in TRANSITIONS]


def ids(pair: tuple[State, Event]) -> str:
    return f"{pair[0].name}-{pair[1].name}"


def stream_in(state: State, send: int = 1000, recv: int = 1000) -> Stream:
    stream = Stream(1, send, recv)
    stream.state = state
    return stream


# -- the table -------------------------------------------------------------------------------------


def test_a_new_stream_is_open():
    stream = Stream(5, 100, 200)
    assert (stream.id, stream.state, stream.closed) == (5, State.OPEN, False)
    assert (stream.send_credit, stream.recv_allowed, stream.unconsumed) == (100, 200, 0)


def test_the_table_is_the_documented_one():
    expected = {
        (State.OPEN, Event.SEND_DATA): State.OPEN,
        (State.OPEN, Event.RECV_DATA): State.OPEN,
        (State.OPEN, Event.SEND_END): State.LOCAL_ENDED,
        (State.OPEN, Event.RECV_END): State.REMOTE_ENDED,
        (State.LOCAL_ENDED, Event.RECV_DATA): State.LOCAL_ENDED,
        (State.LOCAL_ENDED, Event.RECV_END): State.CLOSED,
        (State.REMOTE_ENDED, Event.SEND_DATA): State.REMOTE_ENDED,
        (State.REMOTE_ENDED, Event.SEND_END): State.CLOSED,
    }
    for state in (State.OPEN, State.LOCAL_ENDED, State.REMOTE_ENDED):
        expected[state, Event.SEND_RESET] = State.RESET
        expected[state, Event.RECV_RESET] = State.RESET
    assert expected == TRANSITIONS


@pytest.mark.parametrize("pair", LEGAL, ids=ids)
def test_a_pair_in_the_table_leads_to_its_state(pair):
    state, event = pair
    stream = stream_in(state)
    assert stream.apply(event) is TRANSITIONS[pair]
    assert stream.state is TRANSITIONS[pair]


@pytest.mark.parametrize("pair", [p for p in ILLEGAL if p[1] in RECEIVED], ids=ids)
def test_a_received_event_not_in_the_table_is_the_peers_fault(pair):
    state, event = pair
    stream = stream_in(state)
    with pytest.raises(StreamError) as caught:
        stream.apply(event)
    assert isinstance(caught.value, ProtocolError)  # the session closes the link
    assert stream.state is state  # nothing moved


@pytest.mark.parametrize("pair", [p for p in ILLEGAL if p[1] not in RECEIVED], ids=ids)
def test_a_sent_event_not_in_the_table_is_our_own_bug(pair):
    state, event = pair
    stream = stream_in(state)
    with pytest.raises(LocalStreamError) as caught:
        stream.apply(event)
    assert not isinstance(caught.value, ProtocolError)  # never blamed on the peer
    assert stream.state is state


def test_every_pair_is_either_legal_or_illegal():
    assert len(LEGAL) + len(ILLEGAL) == len(State) * len(Event) == 30


@pytest.mark.parametrize("state", sorted(TERMINAL, key=lambda s: s.value))
def test_terminal_states_have_no_way_out(state):
    assert not [event for event in Event if (state, event) in TRANSITIONS]
    assert stream_in(state).closed


@pytest.mark.parametrize("state", [s for s in State if s not in TERMINAL])
def test_every_live_state_can_be_reset_both_ways(state):
    assert TRANSITIONS[state, Event.SEND_RESET] is State.RESET
    assert TRANSITIONS[state, Event.RECV_RESET] is State.RESET
    assert not stream_in(state).closed


def test_both_half_closes_in_either_order_close_the_stream():
    for first, second in [
        (Event.SEND_END, Event.RECV_END),
        (Event.RECV_END, Event.SEND_END),
    ]:
        stream = Stream(1, 10, 10)
        stream.apply(first)
        assert stream.apply(second) is State.CLOSED
        assert stream.closed


def test_the_error_message_names_the_stream_the_event_and_the_state():
    with pytest.raises(StreamError, match=r"stream 1: cannot receive DATA when remote_ended"):
        stream_in(State.REMOTE_ENDED).apply(Event.RECV_DATA)


def test_flow_control_error_is_a_stream_error():
    assert issubclass(FlowControlError, StreamError)
    assert issubclass(StreamError, ProtocolError)
    assert not issubclass(LocalStreamError, ProtocolError)


# -- sending: send_credit --------------------------------------------------------------------------


def test_sending_within_credit_spends_it():
    stream = Stream(1, 100, 100)
    stream.sent(40)
    assert stream.send_credit == 60


def test_sending_exactly_the_credit_is_allowed():
    stream = Stream(1, 100, 100)
    stream.sent(100)
    assert stream.send_credit == 0
    stream.sent(0)  # an empty DATA frame costs nothing


def test_sending_beyond_the_credit_is_our_bug_and_spends_nothing():
    stream = Stream(1, 100, 100)
    stream.sent(60)
    with pytest.raises(LocalStreamError, match="41 bytes to send with 40 of credit"):
        stream.sent(41)
    assert stream.send_credit == 40


def test_sending_after_the_peer_ended_is_allowed():
    stream = stream_in(State.REMOTE_ENDED, send=10)
    stream.sent(10)
    assert (stream.state, stream.send_credit) == (State.REMOTE_ENDED, 0)


@pytest.mark.parametrize("state", [State.LOCAL_ENDED, State.CLOSED, State.RESET])
def test_sending_after_our_end_or_a_reset_is_our_bug(state):
    stream = stream_in(state, send=10)
    with pytest.raises(LocalStreamError):
        stream.sent(1)
    assert stream.send_credit == 10


def test_credit_raises_what_we_may_send():
    stream = Stream(1, 100, 100)
    stream.sent(100)
    stream.credited(30)
    assert stream.send_credit == 30
    stream.sent(30)


def test_credit_up_to_the_largest_window_is_fine():
    stream = Stream(1, MAX_WINDOW - 5, 100)
    stream.credited(5)
    assert stream.send_credit == MAX_WINDOW


def test_credit_beyond_the_largest_window_is_the_peers_fault():
    stream = Stream(1, MAX_WINDOW - 5, 100)
    with pytest.raises(FlowControlError, match="beyond the largest window"):
        stream.credited(6)


# -- receiving: recv_allowed -----------------------------------------------------------------------


def test_receiving_within_the_window_spends_it():
    stream = Stream(1, 100, 100)
    stream.received(30)
    assert stream.recv_allowed == 70


def test_receiving_exactly_the_window_is_allowed():
    stream = Stream(1, 100, 100)
    stream.received(60)
    stream.received(40)
    assert stream.recv_allowed == 0
    stream.received(0)


def test_receiving_beyond_the_window_is_a_flow_control_error():
    stream = Stream(1, 100, 100)
    stream.received(60)
    with pytest.raises(FlowControlError, match="peer sent 41 bytes with 40 granted"):
        stream.received(41)
    assert stream.recv_allowed == 40


def test_receiving_after_our_end_is_allowed():
    stream = stream_in(State.LOCAL_ENDED, recv=10)
    stream.received(10)
    assert stream.state is State.LOCAL_ENDED


@pytest.mark.parametrize("state", [State.REMOTE_ENDED, State.CLOSED, State.RESET])
def test_receiving_after_the_peers_end_or_a_reset_is_the_peers_fault(state):
    stream = stream_in(state, recv=10)
    with pytest.raises(StreamError) as caught:
        stream.received(1)
    assert not isinstance(caught.value, FlowControlError)  # a state error, not a window one
    assert stream.recv_allowed == 10


# -- consuming and granting back -------------------------------------------------------------------


def test_grants_wait_for_a_quarter_of_the_window():
    stream = Stream(1, 1000, 1000)
    assert stream.grant_at == 250
    stream.received(1000)
    assert stream.consume(100) == 0
    assert stream.consume(149) == 0
    assert stream.recv_allowed == 0  # nothing granted back yet
    assert stream.consume(1) == 250  # the quarter is reached: everything consumed goes back
    assert stream.recv_allowed == 250
    assert stream.unconsumed == 0


def test_a_grant_returns_everything_consumed_not_just_a_quarter():
    stream = Stream(1, 1000, 1000)
    stream.received(1000)
    assert stream.consume(900) == 900
    assert stream.recv_allowed == 900


def test_the_window_grows_back_by_each_grant():
    stream = Stream(1, 1000, 1000)
    stream.received(1000)
    granted = sum(stream.consume(100) for _ in range(10))
    assert granted + stream.unconsumed == 1000
    assert stream.recv_allowed == granted
    stream.received(granted)  # the peer may now send exactly that much more
    with pytest.raises(FlowControlError):
        stream.received(1)


def test_a_tiny_window_grants_every_byte():
    stream = Stream(1, 3, 3)
    assert stream.grant_at == 1
    stream.received(3)
    assert stream.consume(1) == 1


def test_take_grant_returns_every_consumed_byte_now():
    stream = Stream(1, 1000, 1000)
    stream.received(1000)
    assert stream.consume(10) == 0
    assert stream.take_grant() == 10
    assert (stream.recv_allowed, stream.unconsumed) == (10, 0)


def test_take_grant_with_nothing_consumed_is_zero():
    stream = Stream(1, 1000, 1000)
    assert stream.take_grant() == 0
    assert stream.recv_allowed == 1000
