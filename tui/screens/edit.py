"""Edit a request before replaying it: the HTTP message in a text area; ctrl+s sends."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Static, TextArea

from inspector.message import EditError, ReplayRequest, from_text


class EditRequestScreen(ModalScreen[ReplayRequest | None]):
    """Returns the edited request, or None when cancelled; a message that does not parse is
    refused here, with the line that is wrong, and the editor stays open."""

    BINDINGS = [
        Binding("ctrl+s", "send", "Send"),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, request: ReplayRequest) -> None:
        super().__init__()
        self.request = request

    def compose(self) -> ComposeResult:
        with Vertical(id="edit-request"):
            yield Static(
                "Edit the request (method, target, headers, a blank line, the body)",
                id="edit-title",
            )
            yield TextArea(self.request.to_text(), id="edit-text", soft_wrap=True)
            yield Static("", id="edit-error", markup=False)  # quotes the edited line
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(TextArea).focus()

    def action_send(self) -> None:
        text = self.query_one(TextArea).text
        try:
            edited = from_text(text, self.request.body)
        except EditError as exc:
            error = self.query_one("#edit-error", Static)
            error.update(str(exc))
            error.add_class("-shown")
            return
        self.dismiss(edited)

    def action_cancel(self) -> None:
        self.dismiss(None)
