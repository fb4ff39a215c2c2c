"""`molehill relay`: run the relay server (public HTTP listener + agents' websocket endpoint)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import signal
import sys

from relay.cluster.settings import ClusterSettings, parse_cluster, redact_url
from relay.compiled import build_name
from relay.http.names import label_problem
from relay.server import Relay, RelayConfigError, RelaySettings
from relay.server.config import ConfigError, load_config
from relay.server.tcp_ports import PortRange, parse_port_range
from relay.transport.runtime import run_until_signal
from tui.commands import relay_cluster, relay_tokens


def host_port(text: str) -> tuple[str, int]:
    """Parse HOST:PORT for argparse (IPv6 as [::1]:PORT)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def port_range(text: str) -> PortRange:
    """Parse FIRST-LAST for argparse."""
    try:
        return parse_port_range(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "relay",
        help="run the relay server that gives tunnels their public URLs",
        description=(
            "Run a molehill relay: visitors connect to --http, agents to --agents. Settings come "
            "from --config FILE (TOML, see docs/self-hosting.md); flags override it."
        ),
        epilog="Agent tokens: `molehill relay token add|list|revoke --config FILE` manages "
        "them in the config file, `--cluster URL` in a cluster's Redis for every node (see "
        "`molehill relay token --help`). `molehill relay cluster status` lists a cluster's "
        "nodes and tunnels.",
    )
    parser.add_argument("--config", metavar="FILE", help="relay config file (TOML)")
    parser.add_argument("--domain", help="tunnels live at NAME.DOMAIN (default localhost)")
    parser.add_argument(
        "--http",
        type=host_port,
        metavar="HOST:PORT",
        help="public HTTP listener (default 127.0.0.1:8080)",
    )
    parser.add_argument(
        "--agents",
        type=host_port,
        metavar="HOST:PORT",
        help="agents' websocket listener (default 127.0.0.1:7000)",
    )
    parser.add_argument(
        "--public-port",
        type=int,
        metavar="PORT",
        help="port shown in public URLs when a proxy listens for the relay",
    )
    parser.add_argument("--cert", metavar="FILE", help="TLS certificate chain (PEM)")
    parser.add_argument("--key", metavar="FILE", help="TLS private key (PEM)")
    parser.add_argument(
        "--open",
        action="store_true",
        default=None,
        help="accept agents without a token on a non-loopback listener",
    )
    parser.add_argument(
        "--lease",
        type=float,
        metavar="SECONDS",
        help="seconds a disconnected agent's name is held for it (default 120)",
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        metavar="SECONDS",
        help="close visitor connections idle both ways this long (default 300)",
    )
    parser.add_argument(
        "--ping-interval", type=float, metavar="SECONDS", help="heartbeat period (default 5)"
    )
    parser.add_argument(
        "--ping-timeout",
        type=float,
        metavar="SECONDS",
        help="declare a silent agent dead after this many seconds (default 15)",
    )
    parser.add_argument("--log-format", choices=("text", "json"), help="log line format")
    parser.add_argument(
        "--tcp-ports",
        type=port_range,
        metavar="FIRST-LAST",
        help="public ports for TCP tunnels, e.g. 20000-20999 (default: no TCP tunnels)",
    )
    parser.add_argument(
        "--tcp-idle-timeout",
        type=float,
        help="close TCP connections idle both ways this long (default 3600; 0: never)",
    )
    cluster = parser.add_argument_group(
        "cluster", "run as one node of several sharing one domain (docs/self-hosting.md#cluster)"
    )
    cluster.add_argument(
        "--cluster",
        metavar="redis://HOST:PORT/DB",
        help="the Redis that the nodes share tunnel names in",
    )
    cluster.add_argument("--node-id", metavar="NAME", help="this node's name, unique per node")
    cluster.add_argument(
        "--node-url",
        metavar="ws://HOST:PORT",
        help="where the other nodes reach this node's agents' listener",
    )
    cluster.add_argument(
        "--cluster-secret",
        metavar="SECRET",
        help="shared by all nodes (default: $MOLEHILL_CLUSTER_SECRET, which keeps it out of ps)",
    )
    parser.set_defaults(run=run)
    relay_cluster.add_parser(relay_tokens.add_parser(parser))
    # `token` is an optional second command, not an argument of the relay: the usage line and
    # the epilog say so, rather than argparse's "token ..." that reads as required.
    # (Set after add_parser: the token commands take their own usage prefix from this one.)
    parser.usage = (
        "molehill relay [options]\n       molehill relay token {add,list,revoke} ...\n"
        "       molehill relay cluster status [--cluster URL] [--json]"
    )
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            action.help = argparse.SUPPRESS


def settings_from(args: argparse.Namespace) -> RelaySettings:
    """The config file (if any) with the flags on top; raises ConfigError."""
    settings = load_config(args.config) if args.config else RelaySettings()
    if args.domain is not None:
        settings.domain = args.domain.lower().strip(".")
    if args.http is not None:
        settings.http_host, settings.http_port = args.http
    if args.agents is not None:
        settings.agents_host, settings.agents_port = args.agents
    for flag, field in (
        ("public_port", "public_port"),
        ("open", "open"),
        ("lease", "lease"),
        ("idle_timeout", "idle_timeout"),
        ("ping_interval", "ping_interval"),
        ("ping_timeout", "ping_timeout"),
        ("log_format", "log_format"),
        ("tcp_ports", "tcp_ports"),
        ("tcp_idle_timeout", "tcp_idle_timeout"),
    ):
        if getattr(args, flag) is not None:
            setattr(settings, field, getattr(args, flag))
    if bool(args.cert) != bool(args.key):
        raise ConfigError("--cert and --key go together")
    if args.cert:
        settings.tls_cert, settings.tls_key = args.cert, args.key
    settings.cluster = _cluster_from(args, settings.cluster)
    if any(label_problem(part) for part in settings.domain.split(".")):
        raise ConfigError(f"domain {settings.domain!r} is not a valid domain name")
    return settings


def _cluster_from(args: argparse.Namespace, base: ClusterSettings | None) -> ClusterSettings | None:
    """The config file's [cluster] with the cluster flags on top; raises ConfigError."""
    flags = {
        "redis_url": args.cluster,
        "node_id": args.node_id,
        "node_url": args.node_url,
        "secret": args.cluster_secret or os.environ.get("MOLEHILL_CLUSTER_SECRET") or None,
    }
    given = {k: v for k, v in flags.items() if v is not None}
    if base is None and not args.cluster:
        others = [f"--{k.replace('_', '-')}" for k in ("node_id", "node_url") if k in given]
        if args.cluster_secret:
            others.append("--cluster-secret")
        if others:
            verb = "needs" if len(others) == 1 else "need"
            raise ConfigError(f"{', '.join(others)} {verb} --cluster redis://HOST:PORT/DB")
        return None
    fields = {"redis_url": "", "node_id": "", "node_url": "", "secret": ""}
    if base is not None:
        fields.update(dataclasses.asdict(base))
    fields.update(given)
    try:
        return parse_cluster(**fields)
    except ValueError as exc:
        raise ConfigError(f"cluster: {exc}") from None


def run(args: argparse.Namespace) -> int:
    try:
        settings = settings_from(args)
    except ConfigError as exc:
        print(f"molehill: {exc}", file=sys.stderr)
        return 2
    _configure_logging(settings.log_format)
    return run_until_signal(lambda stop: serve(settings, stop))


def _configure_logging(fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    logging.getLogger("websockets").setLevel(logging.WARNING)


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        try:
            fields = json.loads(message)
        except ValueError:
            fields = {"message": message}
        if not isinstance(fields, dict):
            fields = {"message": message}
        return json.dumps({"time": self.formatTime(record), "level": record.levelname, **fields})


async def serve(settings: RelaySettings, stop: asyncio.Event) -> int:
    relay = Relay(dataclasses.replace(settings))
    try:
        await relay.start()
    except RelayConfigError as exc:
        print(f"molehill: the relay will not start: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(
            f"molehill: cannot listen: {exc.strerror or exc}. Is another relay running? "
            "Choose other ports with --http and --agents.",
            file=sys.stderr,
        )
        return 1
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGHUP, lambda: _reload(relay))
    scheme = "wss" if relay.ssl else "ws"
    agents = f"{scheme}://{settings.agents_host}:{relay.agents_port}"
    print(f"molehill relay: tunnels at {relay.public_url('NAME')}", flush=True)
    print(
        f"  public {'HTTPS' if relay.ssl else 'HTTP '} "
        f"{'https' if relay.ssl else 'http'}://{settings.http_host}:{relay.http_port}",
        flush=True,
    )
    print(f"  agents       {agents}  (molehill http PORT --relay {agents})", flush=True)
    if settings.tcp_ports is not None:
        print(f"  TCP ports    {settings.tcp_ports} on {settings.http_host}", flush=True)
    if settings.cluster is not None:
        print(
            f"  cluster      node {settings.cluster.node_id} "
            f"({redact_url(settings.cluster.redis_url)})",
            flush=True,
        )
    tokens = len([t for t in settings.tokens if not t.revoked])
    print(f"  agent tokens {tokens if tokens else 'none (open relay)'}", flush=True)
    build = build_name()
    if build == "pure Python":
        build += " (MOLEHILL_COMPILE=1 pip install . compiles it: docs/self-hosting.md)"
    print(f"  data path    {build}", flush=True)
    await stop.wait()
    print("molehill relay: shutting down", flush=True)
    await relay.stop()
    return 0


def _reload(relay: Relay) -> None:
    try:
        what = relay.reload()
    except (ConfigError, OSError) as exc:
        relay.log_event("reload_failed", error=str(exc))
        return
    relay.log_event("reloaded", what=what)
