"""Add or edit a profile in a modal form with inline validation; dismisses with the Profile."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Footer, Input, Label, Static

from profiles.errors import InvalidProfiles
from profiles.model import Profile
from profiles.validate import (
    basic_auth_problem,
    command_problem,
    host_problem,
    label_problem,
    network_problem,
    port_problem,
    protocol_problem,
)

FIELDS = (  # key, label, placeholder (what an empty field means)
    ("name", "Name", "frontend"),
    ("port", "Local port", "3000"),
    ("host", "Local host", "127.0.0.1"),
    ("subdomain", "Public name", "empty: same as the name"),
    ("basic_auth", "Basic auth", "user:password; empty: none"),
    ("allow", "Allow from", "CIDR, comma-separated; empty: everyone"),
    ("deny", "Deny from", "CIDR, comma-separated; empty: no one"),
    ("protocol", "Protocol", "http or tcp; empty: http"),
    ("remote_port", "Remote port", "tcp only; empty: any free one"),
    ("command", "Command", "runs the app with the tunnel; empty: none"),
)


def _split(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _networks_problem(text: str) -> str | None:
    for cidr in _split(text):
        if problem := network_problem(cidr):
            return problem
    return None


def _port_problem(text: str) -> str | None:
    if not text.strip().isdigit():
        return "the port must be a number from 1 to 65535"
    return port_problem(int(text))


CHECKS = {
    "name": lambda v: label_problem(v),
    "port": _port_problem,
    "host": lambda v: host_problem(v or "127.0.0.1"),
    "subdomain": lambda v: label_problem(v) if v else None,
    "basic_auth": lambda v: basic_auth_problem(v) if v else None,
    "allow": _networks_problem,
    "deny": _networks_problem,
    "protocol": lambda v: protocol_problem(v or "http"),
    "remote_port": lambda v: _port_problem(v) if v else None,
    "command": lambda v: command_problem(v) if v else None,
}


class ProfileFormScreen(ModalScreen[Profile | None]):
    """``existing`` set: edit it; ``taken``: public names other profiles already ask for."""

    BINDINGS = [Binding("ctrl+s", "save", "Save"), Binding("escape", "cancel", "Cancel")]

    def __init__(self, existing: Profile | None = None, taken: set[str] | None = None) -> None:
        super().__init__()
        self.existing = existing
        self.taken = taken or set()

    def compose(self) -> ComposeResult:
        p = self.existing
        values = {
            "name": p.name if p else "",
            "port": str(p.port) if p else "",
            "host": p.host if p else "127.0.0.1",
            "subdomain": (p.subdomain or "") if p else "",
            "basic_auth": (p.basic_auth or "") if p else "",
            "allow": ", ".join(p.allow) if p else "",
            "deny": ", ".join(p.deny) if p else "",
            "protocol": p.protocol if p else "http",
            "remote_port": str(p.remote_port) if p and p.remote_port else "",
            "command": (p.command or "") if p else "",
        }
        with Vertical(id="form"):
            yield Static("Edit profile" if p else "New profile", id="form-title")
            with VerticalScroll(id="form-fields"):
                for key, label, placeholder in FIELDS:
                    with Horizontal(classes="field-row"):
                        yield Label(label, classes="field-label")
                        yield Input(
                            values[key], placeholder=placeholder, id=f"field-{key}", compact=True
                        )
                    yield Static("", id=f"error-{key}", classes="field-error", markup=False)
                yield Checkbox(
                    "Start when the dashboard opens",
                    bool(p and p.autostart),
                    id="field-autostart",
                    compact=True,
                )
            with Vertical(id="form-bottom"):  # docked: visible however long the form gets
                yield Static("", id="form-error", classes="field-error", markup=False)
                with Horizontal(id="form-buttons"):
                    yield Button("Save", variant="primary", id="save", compact=True)
                    yield Button("Cancel", id="cancel", compact=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#field-name", Input).focus()
        self._validate_all()

    def _value(self, key: str) -> str:
        return self.query_one(f"#field-{key}", Input).value.strip()

    def _validate(self, key: str) -> bool:
        value = self._value(key)
        problem = CHECKS[key](value)
        if key in ("name", "subdomain") and not problem:
            public = self._value("subdomain") or self._value("name")
            if public and public in self.taken:
                problem = f"another profile already uses the public name '{public}'"
        error = self.query_one(f"#error-{key}", Static)
        error.update(problem or "")
        error.display = problem is not None
        return problem is None

    def _validate_all(self) -> bool:
        results = [self._validate(key) for key, _, _ in FIELDS]
        ok = all(results)
        self.query_one("#save", Button).disabled = not ok
        return ok

    def on_input_changed(self, event: Input.Changed) -> None:
        self._validate_all()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_save()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "save":
            self.action_save()
        else:
            self.action_cancel()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_save(self) -> None:
        if not self._validate_all():
            return
        port, host = int(self._value("port")), self._value("host") or "127.0.0.1"
        kept: dict[str, Any] = {"port": port, "host": host}
        existing = self.existing
        if existing is not None:  # what the form does not edit stays as the file has it
            kept |= {
                "host_header": existing.host_header,
                "webhook_secrets": dict(existing.webhook_secrets),
                "capture": existing.capture,
                "cwd": existing.cwd if self._value("command") else None,
                "env": dict(existing.env),
                "health": existing.health,
                "stop_grace": existing.stop_grace,
            }
            if existing.tls:  # an https target stays https, at the host and port edited here
                shown = f"[{host}]" if ":" in host else host
                del kept["port"], kept["host"]  # the target says them
                kept |= {
                    "target": f"https://{shown}:{port}",
                    "local_insecure": existing.local_insecure,
                }
        try:
            profile = Profile(
                name=self._value("name"),
                subdomain=self._value("subdomain") or None,
                basic_auth=self._value("basic_auth") or None,
                allow=_split(self._value("allow")),
                deny=_split(self._value("deny")),
                autostart=self.query_one("#field-autostart", Checkbox).value,
                protocol=self._value("protocol") or "http",
                remote_port=int(port_text) if (port_text := self._value("remote_port")) else None,
                command=self._value("command") or None,
                **kept,
            )
        except InvalidProfiles as exc:
            error = self.query_one("#form-error", Static)
            error.update(str(exc))
            error.display = True
            return
        self.dismiss(profile)
