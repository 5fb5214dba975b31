"""Double-buffered messages: written during one frame, readable during that frame and the next."""
from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Messages(Generic[T]):
    """A channel of messages of one type.

    Each message gets a sequence number. A reader, named by a key (usually the reading system
    itself), sees every message once, whether it runs before or after the writer in the frame.
    Buffers swap once per frame, so a message nobody reads is dropped after two frames.
    """

    def __init__(self, message_type: type[T]) -> None:
        self.message_type = message_type
        self._previous: list[tuple[int, T]] = []
        self._current: list[tuple[int, T]] = []
        self._next_id = 0
        self._cursors: dict[object, int] = {}

    def send(self, message: T) -> None:
        if not isinstance(message, self.message_type):
            raise TypeError(f"channel {self.message_type.__name__} got a {type(message).__name__}")
        self._current.append((self._next_id, message))
        self._next_id += 1

    def read(self, reader: object | Callable) -> list[T]:
        """Messages that `reader` has not seen yet, oldest first."""
        seen = self._cursors.get(reader, -1)
        fresh = [m for i, m in self._previous + self._current if i > seen]
        self._cursors[reader] = self._next_id - 1
        return fresh

    def peek(self) -> list[T]:
        """Every message still buffered, without moving any reader."""
        return [m for _, m in self._previous + self._current]

    def swap(self) -> None:
        self._previous, self._current = self._current, []

    def __len__(self) -> int:
        return len(self._previous) + len(self._current)
