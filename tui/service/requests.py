"""The service's answers to control requests: one method per ``op``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from relay.agent import AgentSettings
from tui.service.control import Client
from tui.service.forms import unpack

if TYPE_CHECKING:
    from tui.service.daemon import Service

OPS = ("hello", "status", "start", "stop", "restart", "stop_all", "reload", "shutdown")


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
        service.stopping.set()  # shutdown
        return {"ok": True}
