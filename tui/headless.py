"""Agents run headless for `molehill http` and `start`: plain lines, JSON or the status block."""

from __future__ import annotations

import asyncio
import gc
import os
import sys
from collections.abc import Callable

from inspector import CaptureWriter
from inspector.api import TunnelInfo
from relay.agent import AgentSettings, Refused, Unreachable
from relay.agent.addresses import expand
from relay.agent.links import AnyAgent, agent_for
from relay.agent.resume_store import ResumeStore
from relay.events import (
    AgentEvent,
    Reconnected,
    Reconnecting,
    RequestRecord,
    TunnelClosed,
    TunnelOpen,
)
from runner.apps import AppRunner
from tui.captures import close_capture_writer
from tui.local_api import ApiOptions, start_api, tcp_view
from tui.output import LineWriter, stdout_writer
from tui.report import Reporter
from tui.status_block import StatusBlock


def output(as_json: bool, stop: asyncio.Event) -> LineWriter:
    """The agents' stdout; when its reader goes away (`| head`), they stop, as `yes | head` does.

    Exit code 0 with a line on stderr: the user chose to read no further, nothing failed.
    """

    def closed(exc: OSError) -> None:
        why = "closed" if isinstance(exc, BrokenPipeError) else f"unwritable ({exc.strerror})"
        print(f"molehill: stdout was {why}; shutting down", file=sys.stderr, flush=True)
        stop.set()

    return stdout_writer(as_json, closed)


def wants_status_block(as_json: bool) -> bool:
    """The block on a terminal; plain lines into a pipe, a file or a dumb terminal (an editor's
    shell buffer, which cannot move the cursor); JSON when asked for."""
    if as_json or sys.stdout is None or os.environ.get("TERM") == "dumb":
        return False
    return sys.stdout.isatty()


async def run_agents(
    tunnels: list[tuple[str | None, AgentSettings]],
    as_json: bool,
    stop: asyncio.Event,
    out: LineWriter,
    captures: CaptureWriter | None = None,
    api: ApiOptions | None = None,
    webhook_secrets: dict[str, dict[str, str]] | None = None,
    apps: AppRunner | None = None,
) -> int:
    """Run agents until stop is set, their events to ``out`` and their exchanges to
    ``captures``, with the local API if ``api`` says where (``webhook_secrets``: by tunnel);
    exit code 1 if the relay refuses any of them or a first connection gives up. ``apps``:
    the profiles' commands, told each tunnel's URL, stopped with the tunnels."""
    try:
        return await _run_agents(
            tunnels, as_json, stop, out, captures, api, webhook_secrets or {}, apps
        )
    finally:
        if apps is not None:
            await apps.close()
        if captures is not None:
            # The writer's thread stores what is queued; off the loop, which still has to wind down.
            await asyncio.to_thread(close_capture_writer, captures)


async def _run_agents(
    tunnels: list[tuple[str | None, AgentSettings]],
    as_json: bool,
    stop: asyncio.Event,
    out: LineWriter,
    captures: CaptureWriter | None,
    api: ApiOptions | None,
    webhook_secrets: dict[str, dict[str, str]],
    apps: AppRunner | None = None,
) -> int:
    store = ResumeStore()
    agents: list[AnyAgent] = []
    reporters: list[Reporter] = []
    # Commands' state lines and the redrawn block would overwrite each other: lines, then.
    lines_only = apps is not None and bool(apps.apps)
    block = (
        StatusBlock(out, out.fd, tunnels[0][1].relay)
        if wants_status_block(as_json) and not lines_only
        else None
    )
    for tag, settings in tunnels:
        settings.resume = settings.resume or store.get(settings.relay, settings.name)
        if captures is not None:
            settings.capture_bytes = max(settings.capture_bytes, captures.settings.body_cap)
            settings.message_cap = captures.settings.messages_per_connection
        agent = agent_for(await expand(settings))  # a name with several addresses: a link each
        report: Callable[[AgentEvent], None]
        if block is not None:
            report = block.hook(tag, agent)
        else:
            reporters.append(Reporter(as_json, tag, out))
            report = reporters[-1] if as_json else _named(reporters[-1], agent, tag, out)
        agent.on_event = _remembering(report, store, agent, tag, captures)
        if apps is not None and tag is not None:
            agent.on_event = _wiring(agent.on_event, apps, agent, tag)
        agents.append(agent)
    serving = None
    if api is not None:

        def tunnel_list() -> list[TunnelInfo]:
            return [
                TunnelInfo(
                    tag or agent.name,
                    agent.url,
                    agent.settings.local if tcp else agent.settings.local_url,
                    agent.settings.local_insecure,
                    webhook_secrets.get(tag or agent.name, {}),
                    tcp_view(agent.tcp) if tcp else None,
                )
                for (tag, _), agent in zip(tunnels, agents, strict=True)
                for tcp in [agent.settings.protocol == "tcp"]
            ]

        serving = await start_api(api, captures, tunnel_list, as_json, out)
    # What start-up made (modules, settings, the API) lives as long as the process: out of the
    # collector's way, so a full collection walks only what the tunnels make (as the dashboard).
    gc.freeze()
    tasks = [asyncio.create_task(agent.run()) for agent in agents]
    tags: dict[object, str | None] = {
        task: tag for task, (tag, _) in zip(tasks, tunnels, strict=True)
    }
    if apps is not None:
        await apps.start_all()
    drawing = asyncio.create_task(block.run()) if block is not None else None
    stopper = asyncio.create_task(stop.wait())
    code = 0
    failures: list[str] = []
    pending = set(tasks)
    while pending:
        done, _ = await asyncio.wait(pending | {stopper}, return_when=asyncio.FIRST_COMPLETED)
        if stopper in done:
            break
        for task in done & pending:
            pending.discard(task)
            exc = task.exception()
            if isinstance(exc, Refused | Unreachable):
                code = 1
            if isinstance(exc, Unreachable):
                tag = tags[task]
                failures.append(f"molehill: {f'[{tag}] ' if tag else ''}{_gave_up(exc)}")
            elif isinstance(exc, Refused) and block is not None:
                failures.append(f"molehill: tunnel refused by the relay: {exc.message}")
        if code:
            break
    if apps is not None:
        await apps.close()  # the commands stop with their tunnels
    for agent in agents:
        agent.stop()
    if serving is not None:
        serving[0].close()
        serving[1].close()
    await asyncio.wait(tasks, timeout=3)
    stopper.cancel()
    if drawing is not None:
        drawing.cancel()
        await asyncio.gather(drawing, return_exceptions=True)
    for reporter in reporters:
        reporter.flush()
    if failures:
        out.close()  # what the user already sees comes first, then why it stopped
        print("\n".join(failures), file=sys.stderr, flush=True)
    return code


def _gave_up(exc: Unreachable) -> str:
    if exc.waited is None:
        return exc.reason
    return (
        f"{exc.reason}\nmolehill: gave up after {exc.waited:.1f}s of retries "
        "(--connect-timeout SECONDS sets how long; 0 keeps trying)"
    )


def _named(
    report: Reporter, agent: AnyAgent, tag: str | None, out: LineWriter
) -> Callable[[AgentEvent], None]:
    """Plain lines that say 'tunnel' rather than "tunnel ''" while the relay has not named it,
    and show an https:// target as https://."""

    def on_event(event: AgentEvent) -> None:
        line = None
        if isinstance(event, Reconnecting) and not event.name:
            relay = agent.settings.relay
            line = f"connecting to {relay}: {event.reason}; retrying in {event.delay:.1f}s"
        elif isinstance(event, TunnelClosed) and not event.name:
            line = "tunnel closed"
        elif type(event) is TunnelOpen and agent.settings.local_tls:
            line = f"tunnel '{event.name}' online: {event.url} -> {agent.settings.local_url}"
        if line is None:
            report(event)
            return
        report.flush()
        out.write(f"{f'[{tag}] ' if tag is not None else ''}{line}\n")

    return on_event


def _remembering(
    report: Callable[[AgentEvent], None],
    store: ResumeStore,
    agent: AnyAgent,
    tag: str | None,
    captures: CaptureWriter | None,
) -> Callable[[AgentEvent], None]:
    """Report events; keep each exchange in the capture store (under the profile's name, else
    the public name); once a tunnel is online, keep its resume token for the next run."""

    # The name and the local app's URL the exchanges are kept under, looked up when the tunnel
    # comes online (the relay names it then), not per request: the lookups and the settings
    # check were 26 bytecodes an exchange. In this process the local app's address is fixed
    # for the agent's life (a profile edited means a new process).
    name, target = tag or agent.name, agent.settings.local_url
    submit = captures.submit if captures is not None else None

    def on_event(event: AgentEvent) -> None:
        nonlocal name, target
        if type(event) is RequestRecord:
            if submit is not None:
                submit(name, event, target)
        elif isinstance(event, TunnelOpen | Reconnected):
            name, target = tag or agent.name, agent.settings.local_url
            store.put(agent.settings.relay, agent.name, agent.resume)
        report(event)

    return on_event


def _wiring(
    report: Callable[[AgentEvent], None], apps: AppRunner, agent: AnyAgent, tag: str
) -> Callable[[AgentEvent], None]:
    """Tell the commands each URL this tunnel gets, so those that refer to it start or restart."""
    tasks: set[asyncio.Task[None]] = set()

    def on_event(event: AgentEvent) -> None:
        report(event)
        if isinstance(event, TunnelOpen | Reconnected) and agent.url:
            task = asyncio.get_running_loop().create_task(apps.tunnel_url(tag, agent.url))
            tasks.add(task)  # held until done: the loop keeps only weak references
            task.add_done_callback(tasks.discard)

    return on_event
