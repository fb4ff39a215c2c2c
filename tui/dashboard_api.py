"""The local API served by the dashboard (as by `molehill http`): its profiles' tunnels."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from inspector.api import InspectorApi, TunnelInfo
from inspector.api_server import start_server
from tui.dashboard_captures import DashboardCaptures
from tui.local_api import LAST_PORT, ApiOptions


class DashboardApi:
    """Serves on the dashboard's event loop; ``url`` once listening, else ``problem`` says why."""

    def __init__(
        self,
        options: ApiOptions | None,
        captures: DashboardCaptures,
        tunnels: Callable[[], list[TunnelInfo]],
    ) -> None:
        self.options = options
        self.captures = captures
        self.tunnels = tunnels
        self.url = ""
        self.problem = ""
        self._server: asyncio.Server | None = None
        self._api: InspectorApi | None = None

    async def start(self) -> None:
        options = self.options
        if options is None:
            return
        captures = self.captures
        self._api = InspectorApi(
            captures.settings, self.tunnels, captures.writer, options.webhook_secrets
        )
        port = options.port or 0
        last = port if options.fixed or not port else LAST_PORT
        try:
            self._server = await start_server(self._api.handle, options.host, port, last)
        except OSError as exc:
            where = f"{options.host}:{port}" + ("" if last == port else f"-{last}")
            self.problem = (
                f"the local API is off: cannot listen on {where} ({exc.strerror or exc}); "
                "molehill --api HOST:PORT picks another port"
            )
            return
        host, bound = self._server.sockets[0].getsockname()[:2]
        self.url = f"http://{f'[{host}]' if ':' in host else host}:{bound}"

    async def replay(self, exchange_id: int, options: dict[str, Any]) -> dict[str, Any]:
        """Replay a stored exchange from this process (which holds its original): the local
        API's replay, served or not. Raises what InspectorApi.replay raises."""
        if self._api is None:
            captures = self.captures
            webhook_secrets = self.options.webhook_secrets if self.options else {}
            self._api = InspectorApi(
                captures.settings, self.tunnels, captures.writer, webhook_secrets
            )
        return await self._api.replay(exchange_id, options)

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._api is not None:
            self._api.close()
            self._api = None
