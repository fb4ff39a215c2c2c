"""The service's answers to control requests: one method per ``op``."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from inspector.api_server import ApiError
from inspector.errors import StoreError
from inspector.replay import ReplayError
from inspector.resign import ResignError
from relay.agent import AgentSettings
from tui.service.control import Client
from tui.service.forms import unpack
from tui.service.protocol import encode

if TYPE_CHECKING:
    from tui.service.daemon import Service

OPS = (
    "hello",
    "status",
    "start",
    "stop",
    "restart",
    "stop_all",
    "reload",
    "replay",
    "shutdown",
)


def _text(request: dict[str, Any], key: str) -> str:
    value = request.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key!r} must be a non-empty string")
    return value


def _settings(request: dict[str, Any]) -> AgentSettings | None:
    if request.get("settings") is None:
        return None
    settings = unpack(request["settings"])
    if not isinstance(settings, AgentSettings):
        raise ValueError("'settings' must be agent settings")
    return settings


class Requests:
    def __init__(self, service: Service) -> None:
        self.service = service
        self._tasks: set[asyncio.Task[None]] = set()

    async def _replay(
        self, client: Client, request_id: object, exchange: int, options: dict[str, Any]
    ) -> None:
        try:
            done = await self.service.api.replay(exchange, options)
            reply: dict[str, Any] = {"ok": True, "replay": done}
        except ApiError as exc:
            reply = {"ok": False, "error": exc.message}
        except (ReplayError, ResignError, StoreError) as exc:
            reply = {"ok": False, "error": str(exc)}
        client.send(encode({**reply, "id": request_id}))

    async def answer(self, client: Client, request: dict[str, Any]) -> dict[str, Any] | None:
        op = request.get("op")
        if op not in OPS:
            return {"ok": False, "error": f"unknown op {op!r}; known: {', '.join(OPS)}"}
        service = self.service
        if op == "hello":
            return service.hello(client, bool(request.get("subscribe")))
        if op == "status":
            return service.status()
        if op == "start":
            problem = service.start(_text(request, "key"), _settings(request))
            return {"ok": not problem, "error": problem}
        if op == "stop":
            service.stop(_text(request, "key"))
            return {"ok": True}
        if op == "restart":
            key = _text(request, "key")
            old = request.get("old") or key
            problem = service.restart(str(old), key, _settings(request))
            return {"ok": not problem, "error": problem}
        if op == "stop_all":
            for key in sorted(service.running):
                service.stop(key)
            return {"ok": True}
        if op == "reload":
            return service.reload()
        if op == "replay":
            # Sent by the service, which holds the originals (secrets the store redacts) of what
            # its tunnels captured. Answered when done, so a slow app holds no other request.
            exchange, options = request.get("exchange"), request.get("options") or {}
            if type(exchange) is not int or exchange <= 0 or not isinstance(options, dict):
                raise ValueError("'exchange' must be a stored id and 'options' a map")
            task = asyncio.create_task(self._replay(client, request.get("id"), exchange, options))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return None
        service.stopping.set()  # shutdown
        return {"ok": True}
