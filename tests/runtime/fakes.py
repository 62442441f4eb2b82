"""Fakes shared by the runtime tests."""

from __future__ import annotations


class FakeTransport:
    """The remote peer of one websocket connection: records what the runtime sent."""

    def __init__(self) -> None:
        self.sent: list[str | bytes] = []
        self.closed: tuple[int, str] | None = None

    def send_nowait(self, message: str | bytes) -> None:
        self.sent.append(message)

    def close_nowait(self, code: int, reason: str) -> None:
        self.closed = (code, reason)
