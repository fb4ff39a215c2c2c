"""An app's answer bytes, framed before they reach a visitor: only what answers a request."""

from __future__ import annotations

from dataclasses import dataclass, field

from relay.http.framing import MESSAGE_END, Http1Framer, ResponseHead


@dataclass(slots=True)
class Answers:
    """What one chunk from the agent holds, in order of effect."""

    data: bytes = b""  # to write to the visitor: heads and bodies, as they came
    heads: list[ResponseHead] = field(default_factory=list)
    ended: bool = False  # a response was completed
    dropped: int = 0  # bytes that answer no request (and everything after them)


def frame_answers(responses: Http1Framer, chunk: bytes) -> Answers:
    """Frame ``chunk``; raises HttpError when it is not HTTP the framer can follow.

    Bytes beyond a response's framing while no request awaits one (``Unsolicited``) are not
    passed on: on a connection a proxy pools, they would be taken for the answer to the next
    visitor's request.
    """
    answers = Answers()
    out: list[bytes] = []
    for item in responses.receive(chunk):
        kind = type(item)
        if kind is bytes:
            out.append(item)  # type: ignore[arg-type]
        elif kind is ResponseHead:
            out.append(item.raw)  # type: ignore[union-attr]
            answers.heads.append(item)  # type: ignore[arg-type]
        elif item is MESSAGE_END:
            answers.ended = True
        else:  # Unsolicited: the framer passes everything after it as unsolicited too
            answers.dropped = len(item.data)  # type: ignore[union-attr]
            break
    answers.data = out[0] if len(out) == 1 else b"".join(out)
    return answers
