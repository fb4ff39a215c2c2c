"""The session rules without a network, the way python-websockets tests its sans-I/O protocol.

Two sessions, a relay and an agent, are wired back to back: what one queues
(``data_to_send()``, joined) is what the other receives (``receive_message``). Single sessions
are also fed hand-built messages (``encode_message``) to play a peer that breaks the rules.
"""

from __future__ import annotations

import math
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.wire import codec as p
from relay.wire.codec import FrameDecoder, ProtocolError, encode_message
from relay.wire.session import HELLO_MAX, PING_BURST, PING_RATE, Phase, Session, Side
from relay.wire.stream import FlowControlError, LocalStreamError, State, Stream, StreamError

RELAY_WINDOW = 4096  # what the relay grants the agent per stream
AGENT_WINDOW = 2048  # what the agent grants the relay per stream


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_hello(window: int = AGENT_WINDOW, **options: object) -> p.Hello:
    return p.Hello(p.VERSION, "app", "token", "", window, dict(options))


def make_welcome(
    window: int = RELAY_WINDOW, ping_interval: float = 5.0, lease: float = 30.0
) -> p.Welcome:
    return p.Welcome("app", "http://app.localhost", "resume", lease, ping_interval, window)


def sent_frames(session: Session) -> list[p.Frame]:
    """The frames ``session`` queued, as the peer will decode them."""
    pieces = session.data_to_send()
    return FrameDecoder().decode(b"".join(pieces)) if pieces else []


def deliver(sender: Session, receiver: Session) -> list[p.Frame]:
    """Pass every message ``sender`` queued to ``receiver``; return the events."""
    events: list[p.Frame] = []
    while pieces := sender.data_to_send():
        events += receiver.receive_message(b"".join(pieces))
    return events


def admitting_relay(**kwargs: object) -> Session:
    relay = Session(Side.RELAY, RELAY_WINDOW, **kwargs)  # type: ignore[arg-type]
    relay.receive_message(encode_message(make_hello()))
    return relay


def open_relay(**kwargs: object) -> Session:
    relay = admitting_relay(**kwargs)
    relay.welcome(make_welcome(), AGENT_WINDOW)
    relay.data_to_send()
    return relay


def open_agent(**kwargs: object) -> Session:
    agent = Session(Side.AGENT, AGENT_WINDOW, **kwargs)  # type: ignore[arg-type]
    agent.receive_message(encode_message(make_welcome()))
    return agent


def connected(
    relay_window: int = RELAY_WINDOW, agent_window: int = AGENT_WINDOW
) -> tuple[Session, Session]:
    """A relay and an agent past the greeting, with nothing queued on either side."""
    relay, agent = Session(Side.RELAY, relay_window), Session(Side.AGENT, agent_window)
    agent.hello(make_hello(agent_window))
    (hello,) = deliver(agent, relay)
    relay.welcome(make_welcome(relay_window), hello.window)  # type: ignore[union-attr]
    (welcome,) = deliver(relay, agent)
    assert type(welcome) is p.Welcome
    assert relay.phase is agent.phase is Phase.OPEN
    return relay, agent


def opened(relay: Session, agent: Session) -> tuple[Stream, Stream]:
    """Open a stream; return the relay's and the agent's Stream for it."""
    stream = relay.open_stream("203.0.113.9", 50000)
    (event,) = deliver(relay, agent)
    assert event == p.Open(stream.id, "203.0.113.9", 50000)
    return stream, agent.streams[stream.id]


def hello_message_of_size(size: int) -> bytes:
    """A valid HELLO message of exactly ``size`` bytes (its options padded with long texts)."""
    options = {}
    while len(encode_message(make_hello(**options))) + p.MAX_TEXT + 16 < size:
        options[f"k{len(options)}"] = "x" * p.MAX_TEXT
    base = len(encode_message(make_hello(**options, last="x" * 256)))
    result = encode_message(make_hello(**options, last="x" * (256 + size - base)))
    assert len(result) == size
    return result


# -- greeting: the relay's side --------------------------------------------------------------------


def test_relay_takes_one_hello_alone_and_waits_to_admit():
    relay = Session(Side.RELAY)
    assert relay.receive_message(encode_message(make_hello())) == [make_hello()]
    assert relay.phase is Phase.ADMITTING
    assert not relay.has_output


@pytest.mark.parametrize(
    "frames",
    [
        [make_hello(), p.Ping(1)],
        [p.Ping(1), make_hello()],
        [make_hello(), make_hello()],
    ],
    ids=["hello+ping", "ping+hello", "two-hellos"],
)
def test_relay_refuses_a_hello_that_is_not_alone(frames):
    with pytest.raises(ProtocolError):
        Session(Side.RELAY).receive_message(encode_message(*frames))


@pytest.mark.parametrize(
    "frame",
    [
        p.Ping(1),
        p.Pong(1),
        p.Data(1, b"GET /"),
        p.Open(1, "h", 1),
        p.End(1),
        p.Credit(1, 10),
        p.Reset(1, "x", ""),
        make_welcome(),
        p.Error("x", "y"),
        p.GoAway("bye"),
    ],
    ids=lambda frame: type(frame).__name__,
)
def test_relay_refuses_a_first_message_without_hello(frame):
    relay = Session(Side.RELAY)
    with pytest.raises(ProtocolError, match="first message must be one HELLO"):
        relay.receive_message(encode_message(frame))
    assert relay.phase is Phase.GREETING


def test_relay_decodes_a_first_message_of_exactly_hello_max():
    relay = Session(Side.RELAY)
    (hello,) = relay.receive_message(hello_message_of_size(HELLO_MAX))
    assert type(hello) is p.Hello


def test_relay_refuses_a_first_message_over_hello_max_before_decoding_it():
    relay = Session(Side.RELAY)
    with pytest.raises(ProtocolError, match="first message larger than"):
        relay.receive_message(hello_message_of_size(HELLO_MAX + 1))
    # Bytes no decoder accepts (0xc1 is never used by msgpack): refused for their size, so the
    # size was checked first. (No spy decoder: the compiled build's Session takes only its own.)
    with pytest.raises(ProtocolError, match="first message larger than"):
        Session(Side.RELAY).receive_message(b"\xc1" * (HELLO_MAX + 1))
    with pytest.raises(ProtocolError) as small:
        Session(Side.RELAY).receive_message(b"\xc1" * 8)
    assert "first message larger than" not in str(small.value)


def test_hello_max_binds_only_the_first_message():
    relay, agent = connected(relay_window=64 * 1024)
    ours, theirs = opened(relay, agent)
    body = b"x" * (2 * HELLO_MAX)
    agent.send_data(theirs, body)
    assert deliver(agent, relay) == [p.Data(ours.id, body)]


def test_relay_refuses_frames_sent_before_the_hello_is_answered():
    relay = admitting_relay()
    with pytest.raises(ProtocolError, match="before the HELLO was answered"):
        relay.receive_message(encode_message(p.Ping(1)))


def test_relay_after_refusing_drops_whatever_arrives():
    relay = admitting_relay()
    relay.refuse("bad_token", "no such token")
    assert sent_frames(relay) == [p.Error("bad_token", "no such token")]
    assert relay.phase is Phase.CLOSED
    assert relay.receive_message(encode_message(p.Ping(1), p.Data(9, b"x"))) == []
    assert relay.receive_message(encode_message(make_hello())) == []
    assert not relay.has_output  # not even a PONG


def test_relay_refusing_an_open_session_drops_the_rest():
    relay, agent = connected()
    relay.refuse("token_revoked", "revoked")
    assert deliver(relay, agent) == [p.Error("token_revoked", "revoked")]
    agent.ping(1)
    assert deliver(agent, relay) == []


def test_welcome_answers_a_hello_once():
    with pytest.raises(LocalStreamError):
        Session(Side.RELAY).welcome(make_welcome(), AGENT_WINDOW)  # no HELLO yet
    relay = admitting_relay()
    relay.welcome(make_welcome(), AGENT_WINDOW)
    with pytest.raises(LocalStreamError):
        relay.welcome(make_welcome(), AGENT_WINDOW)
    assert sent_frames(relay) == [make_welcome()]


def test_only_an_agent_sends_hello():
    with pytest.raises(LocalStreamError):
        Session(Side.RELAY).hello(make_hello())


def test_hello_is_sent_once():
    agent = Session(Side.AGENT)
    agent.hello(make_hello())
    with pytest.raises(LocalStreamError):
        agent.hello(make_hello())


# -- greeting: the agent's side --------------------------------------------------------------------


def test_agent_opens_on_welcome_and_learns_the_relays_window():
    agent = Session(Side.AGENT, AGENT_WINDOW)
    welcome = make_welcome(window=5000)
    assert agent.receive_message(encode_message(welcome)) == [welcome]
    assert (agent.phase, agent.peer_window) == (Phase.OPEN, 5000)


@pytest.mark.parametrize(
    "frame",
    [p.Ping(1), p.Pong(1), p.GoAway("bye"), p.Open(1, "h", 1), p.Data(1, b"x"), make_hello()],
    ids=lambda frame: type(frame).__name__,
)
def test_agent_refuses_a_first_frame_other_than_welcome_or_error(frame):
    agent = Session(Side.AGENT)
    with pytest.raises(ProtocolError, match="not WELCOME"):
        agent.receive_message(encode_message(frame))


def test_agent_refused_at_once_closes_and_drops_the_rest():
    agent = Session(Side.AGENT)
    refusal = p.Error("name_taken", "in use")
    assert agent.receive_message(encode_message(refusal, p.Open(1, "h", 1))) == [refusal]
    assert agent.phase is Phase.CLOSED
    assert agent.streams == {}
    assert agent.receive_message(encode_message(p.Ping(1))) == []
    assert not agent.has_output


@pytest.mark.parametrize(
    "welcome",
    [
        make_welcome(window=1023),
        make_welcome(window=0),
        make_welcome(ping_interval=0.049),
        make_welcome(ping_interval=0),
        make_welcome(lease=-1.0),
    ],
    ids=["window", "no-window", "interval", "no-interval", "lease"],
)
def test_agent_refuses_a_welcome_with_impossible_values(welcome):
    agent = Session(Side.AGENT)
    with pytest.raises(ProtocolError, match="impossible"):
        agent.receive_message(encode_message(welcome))
    assert agent.phase is Phase.GREETING


def test_agent_accepts_a_welcome_at_the_limits():
    agent = Session(Side.AGENT)
    welcome = p.Welcome("a", "u", "", 0.0, 0.05, 1024)
    assert agent.receive_message(encode_message(welcome)) == [welcome]


@pytest.mark.parametrize(
    "welcome",
    [
        pytest.param(
            make_welcome(window=p.MAX_WINDOW + 1),
            id="window-above-max",
        ),
        pytest.param(
            make_welcome(ping_interval=math.nan),
            id="nan-interval",
        ),
        pytest.param(
            make_welcome(lease=math.nan),
            id="nan-lease",
        ),
    ],
)
def test_agent_refuses_a_welcome_with_values_out_of_any_range(welcome):
    with pytest.raises(ProtocolError):
        Session(Side.AGENT).receive_message(encode_message(welcome))


def test_agent_takes_a_welcome_and_an_open_in_one_message():
    agent = Session(Side.AGENT, AGENT_WINDOW)
    frames = [make_welcome(), p.Open(1, "203.0.113.9", 4000), p.Data(1, b"GET /")]
    assert agent.receive_message(encode_message(*frames)) == frames
    assert agent.streams[1].send_credit == RELAY_WINDOW
    assert agent.streams[1].recv_allowed == AGENT_WINDOW - 5


def test_a_welcome_before_a_broken_frame_is_returned_and_the_error_kept():
    agent = Session(Side.AGENT)
    events = agent.receive_message(encode_message(make_welcome(), p.Data(1, b"x")))
    assert events == [make_welcome()]
    assert isinstance(agent.error, ProtocolError)


def test_agent_is_told_of_a_refusal_after_the_welcome_and_closes():
    relay, agent = connected()
    relay.refuse("token_revoked", "the token of this tunnel was revoked")
    assert deliver(relay, agent) == [
        p.Error("token_revoked", "the token of this tunnel was revoked")
    ]
    assert agent.phase is Phase.CLOSED
    assert agent.receive_message(encode_message(p.Open(1, "h", 1))) == []


def test_agent_is_told_the_relay_goes_away():
    relay, agent = connected()
    relay.go_away("relay shutting down")
    assert deliver(relay, agent) == [p.GoAway("relay shutting down")]
    assert agent.phase is Phase.OPEN  # the agent decides when to leave


# -- an agent that stops on purpose says GOAWAY --------------------------------------------------


def test_an_agent_that_stops_tells_the_relay_and_gets_no_more_streams():
    relay, agent = connected()
    agent.go_away("agent stopped")
    assert deliver(agent, relay) == [p.GoAway("agent stopped")]
    assert relay.goaway_received and relay.phase is Phase.OPEN  # the agent closes the link
    with pytest.raises(LocalStreamError, match="GOAWAY"):
        relay.open_stream("h", 1)


def test_an_agent_goaway_leaves_open_streams_to_end_normally():
    relay, agent = connected()
    stream = relay.open_stream("h", 1)
    deliver(relay, agent)
    agent.go_away("agent stopped")
    agent.end(agent.streams[stream.id])
    assert deliver(agent, relay) == [p.GoAway("agent stopped"), p.End(stream.id)]


def test_an_agent_sends_goaway_only_after_its_welcome_and_once():
    greeting = Session(Side.AGENT)
    with pytest.raises(LocalStreamError, match="after its WELCOME"):
        greeting.go_away("bye")
    greeting.hello(make_hello())
    with pytest.raises(LocalStreamError, match="after its WELCOME"):
        greeting.go_away("bye")
    refused = Session(Side.AGENT)
    refused.receive_message(encode_message(p.Error("name_held", "held")))
    with pytest.raises(LocalStreamError):
        refused.go_away("bye")
    agent = open_agent()
    agent.go_away("bye")
    with pytest.raises(LocalStreamError, match="once"):
        agent.go_away("bye")


def test_a_goaway_before_the_hello_is_answered_is_refused():
    relay = admitting_relay()
    with pytest.raises(ProtocolError, match="before the HELLO was answered"):
        relay.receive_message(encode_message(p.GoAway("bye")))
    assert relay.phase is Phase.ADMITTING  # the caller closes the link; no name was given


def test_a_goaway_with_the_hello_is_refused():
    relay = Session(Side.RELAY)
    with pytest.raises(ProtocolError):  # refused at the message's header: HELLO travels alone
        relay.receive_message(encode_message(make_hello(), p.GoAway("bye")))
    assert relay.phase is Phase.GREETING


def test_a_refused_agents_goaway_is_dropped():
    relay = admitting_relay()
    relay.refuse("name_held", "held")
    assert relay.receive_message(encode_message(p.GoAway("bye"))) == []


def test_a_second_goaway_from_the_agent_breaks_the_protocol():
    relay = open_relay()
    assert relay.receive_message(encode_message(p.GoAway("bye"))) == [p.GoAway("bye")]
    with pytest.raises(ProtocolError, match="second GOAWAY"):
        relay.receive_message(encode_message(p.GoAway("bye")))


def test_an_agent_goaway_after_stream_frames_in_one_message_keeps_them():
    relay, agent = connected()
    stream = relay.open_stream("h", 1)
    deliver(relay, agent)
    events = relay.receive_message(
        encode_message(p.Data(stream.id, b"HTTP/1.1 200 OK\r\n"), p.GoAway("bye"))
    )
    assert [type(e) for e in events] == [p.Data, p.GoAway]


def test_welcome_twice_is_an_error():
    with pytest.raises(ProtocolError, match="unexpected Welcome"):
        open_agent().receive_message(encode_message(make_welcome()))


@pytest.mark.parametrize(
    "frame",
    [p.Error("x", "y"), p.Open(1, "h", 1), make_welcome(), make_hello()],
    ids=lambda frame: type(frame).__name__,
)
def test_relay_refuses_frames_only_a_relay_may_send_or_a_second_hello(frame):
    with pytest.raises(ProtocolError):
        open_relay().receive_message(encode_message(frame))


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(lambda s: s.refuse("x", "y"), id="refuse"),
    ],
)
def test_relay_only_commands_are_our_bug_on_an_agent(command):
    with pytest.raises(LocalStreamError):
        command(open_agent())


def test_only_an_admitted_relay_opens_streams():
    with pytest.raises(LocalStreamError):
        open_agent().open_stream("h", 1)
    with pytest.raises(LocalStreamError):
        admitting_relay().open_stream("h", 1)


# -- stream ids ------------------------------------------------------------------------------------


def test_relay_opens_ids_1_2_3():
    relay, agent = connected()
    streams = [relay.open_stream("h", port) for port in (1, 2, 3)]
    assert [s.id for s in streams] == [1, 2, 3]
    assert deliver(relay, agent) == [p.Open(1, "h", 1), p.Open(2, "h", 2), p.Open(3, "h", 3)]
    assert sorted(agent.streams) == sorted(relay.streams) == [1, 2, 3]


@pytest.mark.parametrize("again", [1, 2], ids=["reused", "lower"])
def test_agent_refuses_an_open_that_does_not_grow(again):
    agent = open_agent()
    agent.receive_message(encode_message(p.Open(2, "h", 1)))
    with pytest.raises(ProtocolError, match="opened again"):
        agent.receive_message(encode_message(p.Open(again, "h", 1)))


def test_agent_refuses_an_open_of_a_stream_it_already_closed():
    relay, agent = connected()
    _, theirs = opened(relay, agent)
    agent.reset(theirs, "refused")
    with pytest.raises(ProtocolError, match="opened again"):
        agent.receive_message(encode_message(p.Open(theirs.id, "h", 1)))


FRAMES_FOR = {
    "Data": lambda sid: p.Data(sid, b"x"),
    "End": p.End,
    "Reset": lambda sid: p.Reset(sid, "x", ""),
    "Credit": lambda sid: p.Credit(sid, 1),
}


@pytest.mark.parametrize("kind", FRAMES_FOR)
def test_agent_refuses_frames_for_a_stream_never_opened(kind):
    agent = open_agent()
    agent.receive_message(encode_message(p.Open(1, "h", 1)))
    with pytest.raises(ProtocolError, match="never opened"):
        agent.receive_message(encode_message(FRAMES_FOR[kind](2)))


@pytest.mark.parametrize("kind", FRAMES_FOR)
def test_relay_refuses_frames_for_a_stream_never_opened(kind):
    relay = open_relay()
    relay.open_stream("h", 1)
    with pytest.raises(ProtocolError, match="never opened"):
        relay.receive_message(encode_message(FRAMES_FOR[kind](2)))


@pytest.mark.parametrize("kind", FRAMES_FOR)
def test_frames_for_a_stream_reset_a_moment_ago_are_ignored(kind):
    relay, agent = connected()
    ours, _ = opened(relay, agent)
    relay.reset(ours, "gone")
    assert relay.receive_message(encode_message(FRAMES_FOR[kind](ours.id))) == []
    assert relay.error is None


@pytest.mark.parametrize("kind", FRAMES_FOR)
def test_frames_for_a_stream_closed_a_moment_ago_are_ignored(kind):
    relay, agent = connected()
    ours, theirs = opened(relay, agent)
    agent.end(theirs)
    deliver(agent, relay)
    relay.end(ours)  # both ways ended: both sides forget the stream
    deliver(relay, agent)
    assert relay.streams == agent.streams == {}
    assert agent.receive_message(encode_message(FRAMES_FOR[kind](ours.id))) == []
    assert relay.receive_message(encode_message(FRAMES_FOR[kind](ours.id))) == []


def test_relay_cannot_open_past_the_largest_stream_id():
    relay = open_relay()
    relay.next_id = p.MAX_STREAM_ID
    assert relay.open_stream("h", 1).id == p.MAX_STREAM_ID
    with pytest.raises(LocalStreamError):
        relay.open_stream("h", 1)


# -- half close ------------------------------------------------------------------------------------


def test_end_both_ways_forgets_the_stream_on_both_sides():
    relay, agent = connected()
    ours, theirs = opened(relay, agent)
    relay.end(ours)
    assert ours.state is State.LOCAL_ENDED
    assert deliver(relay, agent) == [p.End(ours.id)]
    assert theirs.state is State.REMOTE_ENDED
    agent.end(theirs)
    assert theirs.id not in agent.streams
    assert deliver(agent, relay) == [p.End(ours.id)]
    assert ours.state is State.CLOSED
    assert relay.streams == agent.streams == {}


def test_the_peer_may_still_send_after_our_end():
    relay, agent = connected()
    ours, theirs = opened(relay, agent)
    relay.end(ours)
    deliver(relay, agent)
    agent.send_data(theirs, b"response")
    agent.end(theirs)
    assert deliver(agent, relay) == [p.Data(ours.id, b"response"), p.End(ours.id)]


def test_data_after_the_peers_end_is_an_error():
    relay, agent = connected()
    ours, _ = opened(relay, agent)
    relay.receive_message(encode_message(p.End(ours.id)))
    with pytest.raises(StreamError, match="cannot receive DATA when remote_ended"):
        relay.receive_message(encode_message(p.Data(ours.id, b"x")))


def test_end_twice_is_an_error():
    relay, agent = connected()
    _, theirs = opened(relay, agent)
    agent.receive_message(encode_message(p.End(theirs.id)))
    with pytest.raises(StreamError, match="cannot receive END"):
        agent.receive_message(encode_message(p.End(theirs.id)))


def test_sending_after_our_own_end_is_our_bug():
    relay, agent = connected()
    ours, _ = opened(relay, agent)
    relay.end(ours)
    with pytest.raises(LocalStreamError):
        relay.send_data(ours, b"x")
    with pytest.raises(LocalStreamError):
        relay.end(ours)
    assert sent_frames(relay) == [p.End(ours.id)]


# -- resets ----------------------------------------------------------------------------------------


def test_a_reset_is_delivered_and_the_stream_forgotten():
    relay, agent = connected()
    ours, theirs = opened(relay, agent)
    agent.reset(theirs, "refused", "connection refused")
    assert theirs.id not in agent.streams
    assert deliver(agent, relay) == [p.Reset(ours.id, "refused", "connection refused")]
    assert ours.state is State.RESET
    assert relay.streams == {}


def test_an_open_and_its_reset_in_one_message_are_both_delivered():
    relay, agent = connected()
    stream = relay.open_stream("h", 1)
    relay.send_data(stream, b"GET /")
    relay.reset(stream, "client gone")
    assert deliver(relay, agent) == [
        p.Open(1, "h", 1),
        p.Data(1, b"GET /"),
        p.Reset(1, "client gone", ""),
    ]
    assert agent.error is None


def test_a_stream_half_ended_can_still_be_reset():
    relay, agent = connected()
    ours, theirs = opened(relay, agent)
    relay.end(ours)
    relay.reset(ours, "timeout")
    assert deliver(relay, agent) == [p.End(ours.id), p.Reset(ours.id, "timeout", "")]
    assert theirs.state is State.RESET


def test_resetting_a_stream_already_over_sends_nothing():
    relay, agent = connected()
    ours, theirs = opened(relay, agent)
    agent.reset(theirs, "x")
    deliver(agent, relay)
    relay.reset(ours, "y")
    agent.reset(theirs, "again")
    assert not relay.has_output
    assert not agent.has_output


def test_crossing_resets_are_ignored_on_both_sides():
    relay, agent = connected()
    ours, theirs = opened(relay, agent)
    relay.reset(ours, "client gone")
    agent.reset(theirs, "app gone")
    assert deliver(relay, agent) == []
    assert deliver(agent, relay) == []
    assert relay.error is agent.error is None
    assert relay.streams == agent.streams == {}


def test_crossing_end_and_reset_are_fine():
    relay, agent = connected()
    ours, theirs = opened(relay, agent)
    relay.end(ours)
    agent.reset(theirs, "app gone")
    assert deliver(relay, agent) == []
    assert deliver(agent, relay) == [p.Reset(ours.id, "app gone", "")]


def test_data_and_credit_in_flight_after_a_reset_are_ignored():
    relay, agent = connected()
    ours, theirs = opened(relay, agent)
    relay.send_data(ours, b"x" * 1000)
    deliver(relay, agent)
    agent.send_data(theirs, b"in flight")
    agent.consume(theirs, 1000)  # drained: a CREDIT goes back...
    agent.end(theirs)
    relay.reset(ours, "client gone")  # ...while the relay resets the stream
    assert deliver(agent, relay) == []
    assert relay.error is None


# -- windows end to end ----------------------------------------------------------------------------


def test_each_side_sends_within_the_window_the_other_granted():
    relay, agent = connected(relay_window=8192, agent_window=2048)
    ours, theirs = opened(relay, agent)
    assert (ours.send_credit, ours.recv_allowed) == (2048, 8192)
    assert (theirs.send_credit, theirs.recv_allowed) == (8192, 2048)


def test_relay_sends_exactly_the_window_then_waits_for_credit():
    relay, agent = connected()
    ours, theirs = opened(relay, agent)
    relay.send_data(ours, b"x" * (AGENT_WINDOW - 1))
    relay.send_data(ours, b"x")
    with pytest.raises(LocalStreamError):
        relay.send_data(ours, b"x")
    assert [len(e.data) for e in deliver(relay, agent)] == [AGENT_WINDOW - 1, 1]  # type: ignore[union-attr]
    assert theirs.recv_allowed == 0
    agent.consume(theirs, AGENT_WINDOW // 2)
    assert deliver(agent, relay) == [p.Credit(ours.id, AGENT_WINDOW // 2)]
    assert ours.send_credit == AGENT_WINDOW // 2
    relay.send_data(ours, b"x" * (AGENT_WINDOW // 2))
    assert deliver(relay, agent) == [p.Data(ours.id, b"x" * (AGENT_WINDOW // 2))]


def test_an_agent_sending_more_than_granted_breaks_flow_control():
    relay, agent = connected()
    ours, _ = opened(relay, agent)
    relay.receive_message(encode_message(p.Data(ours.id, b"x" * RELAY_WINDOW)))
    with pytest.raises(FlowControlError):
        relay.receive_message(encode_message(p.Data(ours.id, b"x")))


def test_the_window_counts_every_data_frame_in_a_message():
    relay = open_relay()
    ours = relay.open_stream("h", 1)
    half = b"x" * (RELAY_WINDOW // 2)
    frames = [p.Data(ours.id, half), p.Data(ours.id, half), p.Data(ours.id, b"!")]
    assert relay.receive_message(encode_message(*frames)) == frames[:2]
    assert isinstance(relay.error, FlowControlError)


def test_a_credit_overflowing_the_largest_window_is_an_error():
    relay, agent = connected()
    ours, _ = opened(relay, agent)
    with pytest.raises(FlowControlError):
        relay.receive_message(encode_message(p.Credit(ours.id, p.MAX_WINDOW)))


def test_consuming_sends_one_credit_per_quarter_window():
    relay, agent = connected()
    ours, theirs = opened(relay, agent)
    relay.send_data(ours, b"x" * AGENT_WINDOW)
    deliver(relay, agent)
    quarter = AGENT_WINDOW // 4
    for _ in range(quarter // 64 - 1):
        agent.consume(theirs, 64)
    assert not agent.has_output
    agent.consume(theirs, 64)
    assert sent_frames(agent) == [p.Credit(theirs.id, quarter)]
    for _ in range(AGENT_WINDOW // 64 - quarter // 64):
        agent.consume(theirs, 64)
    assert sent_frames(agent) == [p.Credit(theirs.id, quarter)] * 3


def test_grant_now_sends_every_consumed_byte_at_once():
    relay, agent = connected()
    ours, theirs = opened(relay, agent)
    relay.send_data(ours, b"x" * 100)
    deliver(relay, agent)
    agent.consume(theirs, 100)
    assert not agent.has_output
    agent.grant_now(theirs)
    assert deliver(agent, relay) == [p.Credit(ours.id, 100)]
    agent.grant_now(theirs)
    assert not agent.has_output  # nothing left to grant


def test_no_credit_is_sent_for_a_stream_that_is_over():
    relay, agent = connected()
    ours, theirs = opened(relay, agent)
    relay.send_data(ours, b"x" * AGENT_WINDOW)
    relay.reset(ours, "gone")
    deliver(relay, agent)
    agent.consume(theirs, AGENT_WINDOW)
    agent.grant_now(theirs)
    assert not agent.has_output


# -- ping ------------------------------------------------------------------------------------------


def test_a_ping_is_answered_with_a_pong_of_the_same_payload():
    relay, agent = connected()
    relay.ping(2**63)
    assert deliver(relay, agent) == []  # answered, not returned
    assert sent_frames(agent) == [p.Pong(2**63)]


def test_a_pong_is_an_event():
    relay, agent = connected()
    agent.ping(42)
    deliver(agent, relay)
    assert deliver(relay, agent) == [p.Pong(42)]


def test_pings_up_to_the_burst_pass_then_the_next_is_a_flood():
    clock = FakeClock()
    agent = open_agent(clock=clock)
    for payload in range(int(PING_BURST)):
        agent.receive_message(encode_message(p.Ping(payload)))
    assert len(sent_frames(agent)) == PING_BURST
    with pytest.raises(ProtocolError, match="ping flood"):
        agent.receive_message(encode_message(p.Ping(0)))


def test_a_burst_in_one_message_counts_each_ping():
    relay = open_relay(clock=FakeClock())
    relay.receive_message(encode_message(*[p.Ping(n) for n in range(int(PING_BURST))]))
    with pytest.raises(ProtocolError, match="ping flood"):
        relay.receive_message(encode_message(p.Ping(0)))


def test_the_ping_budget_refills_with_time():
    clock = FakeClock()
    relay = open_relay(clock=clock)
    relay.receive_message(encode_message(*[p.Ping(n) for n in range(int(PING_BURST))]))
    clock.now += 1.5 / PING_RATE
    relay.receive_message(encode_message(p.Ping(0)))  # one and a half tokens back
    with pytest.raises(ProtocolError, match="ping flood"):
        relay.receive_message(encode_message(p.Ping(0)))


def test_the_ping_budget_never_exceeds_the_burst():
    clock = FakeClock()
    relay = open_relay(clock=clock)
    clock.now += 3600
    relay.receive_message(encode_message(*[p.Ping(n) for n in range(int(PING_BURST))]))
    with pytest.raises(ProtocolError, match="ping flood"):
        relay.receive_message(encode_message(p.Ping(0)))


def test_pings_at_the_average_rate_go_on_forever():
    clock = FakeClock()
    relay = open_relay(clock=clock)
    for n in range(10 * int(PING_BURST)):
        clock.now += 1 / PING_RATE
        relay.receive_message(encode_message(p.Ping(n)))


def test_websocket_pings_count_against_the_same_budget():
    relay = open_relay(clock=FakeClock())
    for _ in range(int(PING_BURST)):
        relay.websocket_ping()
    with pytest.raises(ProtocolError, match="ping flood"):
        relay.receive_message(encode_message(p.Ping(0)))
    with pytest.raises(ProtocolError, match="ping flood"):
        relay.websocket_ping()


# -- an error after valid frames -------------------------------------------------------------------


def test_an_error_after_valid_frames_returns_them_and_keeps_the_error():
    relay, agent = connected()
    ours, theirs = opened(relay, agent)
    events = agent.receive_message(
        encode_message(p.Data(ours.id, b"last"), p.End(ours.id), p.Data(ours.id, b"late"))
    )
    assert events == [p.Data(ours.id, b"last"), p.End(ours.id)]
    assert isinstance(agent.error, StreamError)
    assert agent.phase is Phase.CLOSED
    with pytest.raises(StreamError) as caught:
        agent.receive_message(encode_message(p.Ping(1)))
    assert caught.value is agent.error
    assert theirs.state is State.REMOTE_ENDED


def test_an_error_in_the_first_frame_is_raised_at_once():
    agent = open_agent()
    with pytest.raises(ProtocolError, match="never opened"):
        agent.receive_message(encode_message(p.Data(1, b"x"), p.Open(1, "h", 1)))
    assert agent.streams == {}


def test_a_ping_flood_after_valid_frames_is_kept_for_the_next_call():
    agent = open_agent(clock=FakeClock())
    agent.receive_message(encode_message(p.Open(1, "h", 1), *[p.Ping(0)] * int(PING_BURST)))
    events = agent.receive_message(encode_message(p.Data(1, b"x"), p.Ping(1)))
    assert events == [p.Data(1, b"x")]
    assert isinstance(agent.error, ProtocolError)


# -- output batching -------------------------------------------------------------------------------


def test_several_commands_make_one_message():
    relay = open_relay()
    stream = relay.open_stream("h", 1)
    relay.send_data(stream, b"hello")
    relay.end(stream)
    relay.ping(7)
    pieces = relay.data_to_send()
    assert pieces[0] == p.array_header(4) == b"\x94"
    assert FrameDecoder().decode(b"".join(pieces)) == [
        p.Open(1, "h", 1),
        p.Data(1, b"hello"),
        p.End(1),
        p.Ping(7),
    ]


def test_the_header_counts_frames_beyond_fifteen():
    relay, agent = connected()
    stream = relay.open_stream("h", 1)
    for _ in range(19):
        relay.send_data(stream, b"x")
    pieces = relay.data_to_send()
    assert pieces[0] == b"\xdc\x00\x14"
    assert len(agent.receive_message(b"".join(pieces))) == 20


def test_send_data_does_not_copy_the_payload():
    relay, agent = connected()
    stream = relay.open_stream("h", 1)
    payload = bytes(range(256)) * 4
    relay.send_data(stream, payload)
    pieces = relay.data_to_send()
    assert any(piece is payload for piece in pieces)
    assert agent.receive_message(b"".join(pieces))[1] == p.Data(1, payload)


def test_data_to_send_empties_the_queue():
    relay, _ = connected()
    relay.ping(1)
    assert relay.has_output and relay.queued_bytes > 0
    assert relay.data_to_send()
    assert relay.data_to_send() == []
    assert (relay.has_output, relay.queued_bytes) == (False, 0)


def test_queued_bytes_counts_the_payloads():
    relay, _ = connected()
    stream = relay.open_stream("h", 1)
    before = relay.queued_bytes
    relay.send_data(stream, b"x" * 1000)
    assert relay.queued_bytes == before + 1000


def test_a_command_that_fails_queues_nothing():
    relay, agent = connected()
    ours, _ = opened(relay, agent)
    with pytest.raises(LocalStreamError):
        relay.send_data(ours, b"x" * (AGENT_WINDOW + 1))
    assert not relay.has_output
    assert ours.send_credit == AGENT_WINDOW


def test_every_message_queued_is_one_the_peer_can_decode():
    relay, agent = connected(agent_window=1024 * 1024)
    ours, _ = opened(relay, agent)
    for _ in range(p.MAX_FRAMES + 1):
        relay.send_data(ours, b"x")  # one byte from each of many busy streams, say
    events = deliver(relay, agent)
    assert len(events) == p.MAX_FRAMES + 1


# -- random legal traffic --------------------------------------------------------------------------


class Side_:
    """One side of the random exchange: its session and what it saw and did per stream."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.streams: dict[int, Stream] = {}  # every stream this side ever had, over or not
        self.sent: Counter[int] = Counter()
        self.delivered: Counter[int] = Counter()
        self.unconsumed: Counter[int] = Counter()
        self.ended: set[int] = set()
        self.reset: set[int] = set()
        self.ends_seen: set[int] = set()
        self.resets_seen: set[int] = set()

    def pick(self, index: int) -> Stream | None:
        """Mostly a live stream; now and then any stream, over or not (commands may fail)."""
        ids = sorted(self.session.streams) if index < 6 else sorted(self.streams)
        return self.streams[ids[index % len(ids)]] if ids else None

    def command(self, name: str, index: int, size: int) -> None:
        """Run one command on this side, skipping it if our own rules forbid it."""
        session, stream = self.session, self.pick(index)
        if name == "open":
            if session.side is Side.RELAY:
                stream = session.open_stream("h", 1)
                self.streams[stream.id] = stream
            return
        if name == "ping":
            session.ping(size)
            return
        if stream is None:
            return
        sid = stream.id
        try:
            if name in ("send", "fill"):
                if name == "fill":
                    size = stream.send_credit  # what a caller holding data back would send
                session.send_data(stream, b"x" * size)
                self.sent[sid] += size
            elif name == "end":
                session.end(stream)
                self.ended.add(sid)
            elif name == "reset":
                if not stream.closed:
                    self.reset.add(sid)
                session.reset(stream, "random")
            elif name == "consume":
                amount = min(size, self.unconsumed[sid])
                session.consume(stream, amount)
                self.unconsumed[sid] -= amount
            elif name == "grant":
                session.grant_now(stream)
        except LocalStreamError:
            pass

    def take(self, events: list[p.Frame]) -> None:
        for event in events:
            if type(event) is p.Open:
                # Gone already if a RESET for it came in the same message: nothing to do then.
                stream = self.session.streams.get(event.stream)
                if stream is not None:
                    self.streams[event.stream] = stream
            elif type(event) is p.Data:
                self.delivered[event.stream] += len(event.data)
                self.unconsumed[event.stream] += len(event.data)
            elif type(event) is p.End:
                self.ends_seen.add(event.stream)
            elif type(event) is p.Reset:
                self.resets_seen.add(event.stream)


def send_over(sender: Side_, receiver: Side_) -> None:
    pieces = sender.session.data_to_send()
    if pieces:
        receiver.take(receiver.session.receive_message(b"".join(pieces)))  # never raises
        assert receiver.session.error is None


STEP = st.tuples(
    st.sampled_from(  # weighted: streams should live long enough to fill their windows
        ["open", "end", "reset", "grant", "ping"] + ["send", "fill", "consume"] * 3 + ["flush"] * 4
    ),
    st.booleans(),  # True: the relay acts (or flushes); False: the agent
    st.integers(0, 7),  # which stream
    st.integers(0, 1500),  # bytes to send or consume, ping payload
)


@settings(max_examples=200, deadline=None)
@given(st.lists(STEP, min_size=20, max_size=80))
def test_random_legal_commands_never_break_the_peer(steps):
    relay_session, agent_session = connected(relay_window=1024, agent_window=2048)
    relay, agent = Side_(relay_session), Side_(agent_session)
    for _ in range(3):  # streams to work on from the start
        relay.command("open", 0, 0)
    send_over(relay, agent)
    for name, relay_acts, index, size in steps:
        me, peer = (relay, agent) if relay_acts else (agent, relay)
        if name == "flush":
            send_over(me, peer)  # a message boundary
        else:
            me.command(name, index, size)
    while relay.session.has_output or agent.session.has_output:
        send_over(relay, agent)
        send_over(agent, relay)

    for sender, receiver in [(relay, agent), (agent, relay)]:
        for sid, stream in sender.streams.items():
            if sid in receiver.reset:  # data in flight after our reset is dropped
                assert receiver.delivered[sid] <= sender.sent[sid]
                continue
            assert receiver.delivered[sid] == sender.sent[sid]
            assert (sid in sender.ended) == (sid in receiver.ends_seen)
            theirs = receiver.streams.get(sid)
            if sid in sender.reset and (theirs is None or theirs.state is not State.CLOSED):
                assert sid in receiver.resets_seen
            assert stream.send_credit >= 0
    for side in (relay, agent):
        for sid, stream in side.streams.items():
            assert (sid in side.session.streams) == (not stream.closed)
