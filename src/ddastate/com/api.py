"""The communication API of DDA: pub-sub patterns Event, Action/ActionResult and
Query/QueryResult over scopes, with the reference's names and naming rules.

A binding (``LoopbackBinding``, ``Mqtt5Binding``) implements :class:`ComApi`.
Subscriptions and result streams are async iterators that end when the caller
closes them (``aclose`` or ``async with``), when a result stream's timeout
elapses, or when the binding closes.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, runtime_checkable

if TYPE_CHECKING:
    from ddastate.config import Config

__all__ = [
    "Action",
    "ActionResult",
    "ActionWithCallback",
    "ComApi",
    "ComClosedError",
    "ComError",
    "ComNotConnectedError",
    "ComNotOpenError",
    "Event",
    "InvalidNameError",
    "Query",
    "QueryResult",
    "QueryWithCallback",
    "ResultStream",
    "Scope",
    "SharedSubscriptionUnsupportedError",
    "Subscription",
    "SubscriptionFilter",
    "validate_name",
    "validate_non_empty",
]

T = TypeVar("T")
R = TypeVar("R")


class Scope(str, enum.Enum):  # noqa: UP042 - str mixin keeps == "com" working
    """Scope of a pub-sub message: the second topic level. Empty means COM."""

    COM = "com"
    STA = "sta"
    SDC = "sdc"

    @classmethod
    def of(cls, value: Scope | str | None) -> Scope:
        """Scope from a Scope, its string ("" and None mean COM); ValueError if unknown."""
        if isinstance(value, Scope):
            return value
        if not value:
            return cls.COM
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"unknown scope {value!r}") from None

    def __str__(self) -> str:
        return self.value


# --------------------------------------------------------------------------- errors


class ComError(Exception):
    """Base class of communication errors."""


class InvalidNameError(ComError, ValueError):
    """A type, share name, cluster, id or source breaks the DDA naming rules."""


class ComNotOpenError(ComError):
    """The binding is not open (never opened, or closed)."""


class ComClosedError(ComNotOpenError):
    """The binding was closed while the operation was waiting."""


class ComNotConnectedError(ComError):
    """The broker connection is down; a QoS 0 publication cannot be sent. Retryable."""

    retryable = True


class SharedSubscriptionUnsupportedError(ComError):
    """The broker does not support shared subscriptions."""


_NAME = re.compile(r"[-_.0-9a-zA-Z]+")
_valid_names: set[str] = set()


def validate_name(name: str, *context: str) -> None:
    """Raise InvalidNameError unless ``name`` matches ``^[-_.0-9a-zA-Z]+$``."""
    if name in _valid_names:
        return
    if not isinstance(name, str) or _NAME.fullmatch(name) is None:
        raise InvalidNameError(
            f"invalid {' '.join(context)} {name!r}: must only contain characters "
            "0-9, a-z, A-Z, dot, hyphen, or underscore"
        )
    if len(_valid_names) > 10000:
        _valid_names.clear()
    _valid_names.add(name)


def validate_non_empty(value: str, *context: str) -> None:
    """Raise InvalidNameError if ``value`` is not a non-empty string."""
    if not value or not isinstance(value, str):
        raise InvalidNameError(f"invalid {' '.join(context)} {value!r}: must not be empty")


# --------------------------------------------------------------------------- patterns


@dataclass(slots=True)
class Event:
    """One-way message. ``time`` and ``data_content_type`` are free-form strings."""

    type: str
    id: str
    source: str
    data: bytes = b""
    time: str = ""
    data_content_type: str = ""


@dataclass(slots=True)
class Action:
    """Request for results from subscribers of ``type``."""

    type: str
    id: str
    source: str
    params: bytes = b""
    data_content_type: str = ""


@dataclass(slots=True)
class ActionResult:
    """A result of an Action; ``sequence_number`` orders several results (``sq``)."""

    context: str = ""
    data: bytes = b""
    data_content_type: str = ""
    sequence_number: int = 0


@dataclass(slots=True)
class Query:
    """Request for data from subscribers of ``type``."""

    type: str
    id: str
    source: str
    data: bytes = b""
    data_content_type: str = ""


@dataclass(slots=True)
class QueryResult:
    """A result of a Query."""

    context: str = ""
    data: bytes = b""
    data_content_type: str = ""
    sequence_number: int = 0


@dataclass(slots=True, init=False)
class SubscriptionFilter:
    """What to subscribe to: scope, type and optional shared-subscription group name."""

    scope: Scope
    type: str
    share: str

    def __init__(self, scope: Scope | str | None, type: str, share: str = "") -> None:
        self.scope = Scope.of(scope)
        self.type = type
        self.share = share


class _Replier(Protocol):
    def _send_result(
        self, response_topic: str, correlation_data: bytes, level: str, result: Any
    ) -> None: ...


class ActionWithCallback:
    """An incoming Action and the means to answer it.

    ``await callback(result)`` (or the non-blocking ``send(result)``) publishes
    ``result`` to the request's response topic with the correlation data echoed.
    """

    __slots__ = ("_binding", "_corr", "_response_topic", "action")

    def __init__(self, action: Action, binding: _Replier, response_topic: str, corr: bytes) -> None:
        self.action = action
        self._binding = binding
        self._response_topic = response_topic
        self._corr = corr

    def send(self, result: ActionResult) -> None:
        """Publish ``result`` now (raises ComError if the binding cannot send)."""
        self._binding._send_result(self._response_topic, self._corr, "acr", result)

    async def callback(self, result: ActionResult) -> None:
        """Publish ``result`` to the requester."""
        self._binding._send_result(self._response_topic, self._corr, "acr", result)

    def __repr__(self) -> str:
        return f"ActionWithCallback({self.action!r})"


class QueryWithCallback:
    """An incoming Query and the means to answer it (see ActionWithCallback)."""

    __slots__ = ("_binding", "_corr", "_response_topic", "query")

    def __init__(self, query: Query, binding: _Replier, response_topic: str, corr: bytes) -> None:
        self.query = query
        self._binding = binding
        self._response_topic = response_topic
        self._corr = corr

    def send(self, result: QueryResult) -> None:
        """Publish ``result`` now."""
        self._binding._send_result(self._response_topic, self._corr, "qrr", result)

    async def callback(self, result: QueryResult) -> None:
        """Publish ``result`` to the requester."""
        self._binding._send_result(self._response_topic, self._corr, "qrr", result)

    def __repr__(self) -> str:
        return f"QueryWithCallback({self.query!r})"


# --------------------------------------------------------------------------- streams


Handler = Callable[[T], "Awaitable[Any] | None"]


class _Stream(Generic[T]):
    """Unbounded queue with an async-iterator face; ended by close()."""

    __slots__ = ("_closed", "_items", "_on_close", "_waiter")

    def __init__(self, on_close: Callable[[], None] | None) -> None:
        self._items: collections.deque[T] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self._on_close = on_close

    @property
    def closed(self) -> bool:
        """True once the stream was closed; buffered items can still be read."""
        return self._closed

    def _put(self, item: T) -> None:
        if self._closed:
            return
        self._items.append(item)
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _end(self) -> None:
        """Mark ended (by timeout or binding close); buffered items stay readable."""
        if self._closed:
            return
        self._closed = True
        cb, self._on_close = self._on_close, None
        if cb is not None:
            cb()
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def __aiter__(self) -> AsyncIterator[T]:
        return self

    async def __anext__(self) -> T:
        while True:
            if self._items:
                return self._items.popleft()
            if self._closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    async def get(self, timeout: float | None = None) -> T:
        """Next item; TimeoutError after ``timeout`` s, StopAsyncIteration if ended."""
        async with asyncio.timeout(timeout):
            return await self.__anext__()

    async def aclose(self) -> None:
        """End the stream and release its resources; pending items are dropped."""
        self._items.clear()
        self._end()

    def close(self) -> None:
        """Synchronous aclose()."""
        self._items.clear()
        self._end()

    async def __aenter__(self) -> _Stream[T]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class Subscription(_Stream[T]):
    """A subscription: async iterator of incoming items, unless a handler was given
    (then items go straight to the handler and the subscription is only a handle)."""

    __slots__ = ("filter", "handler")

    def __init__(
        self,
        filter: SubscriptionFilter,
        handler: Handler[T] | None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(on_close)
        self.filter = filter
        self.handler = handler

    async def __anext__(self) -> T:
        if self.handler is not None:
            raise TypeError("a subscription with a handler cannot be iterated")
        return await super().__anext__()


class ResultStream(_Stream[R]):
    """Results of one Action or Query, in arrival order; ends on aclose or timeout."""

    __slots__ = ("_timer", "correlation_data")

    def __init__(self, correlation_data: bytes, on_close: Callable[[], None] | None) -> None:
        super().__init__(on_close)
        self.correlation_data = correlation_data
        self._timer: asyncio.TimerHandle | None = None

    def _end(self) -> None:
        t, self._timer = self._timer, None
        if t is not None:
            t.cancel()
        super()._end()


# --------------------------------------------------------------------------- protocol


@runtime_checkable
class ComApi(Protocol):
    """What a communication binding offers (the reference's api.Api in Python form)."""

    async def open(self, cfg: Config, timeout: float | None = None) -> None:
        """Connect using ``cfg`` (cluster, identity, services.com)."""
        ...

    async def close(self) -> None:
        """Disconnect; ends every subscription and result stream. Idempotent."""
        ...

    def identity(self) -> str:
        """This member's identity id (used in response topics)."""
        ...

    async def publish_event(self, event: Event, scope: Scope | str = Scope.COM) -> None:
        """Publish an Event."""
        ...

    async def subscribe_event(
        self, filter: SubscriptionFilter, handler: Handler[Event] | None = None
    ) -> Subscription[Event]:
        """Subscribe to Events; returns once the subscription is active."""
        ...

    async def publish_action(
        self, action: Action, scope: Scope | str = Scope.COM, timeout: float | None = None
    ) -> ResultStream[ActionResult]:
        """Publish an Action; its results arrive on the returned stream."""
        ...

    async def request_action(
        self, action: Action, scope: Scope | str = Scope.COM, timeout: float = 1.0
    ) -> ActionResult:
        """Publish an Action and return its first result; TimeoutError if none in time."""
        ...

    async def subscribe_action(
        self,
        filter: SubscriptionFilter,
        handler: Handler[ActionWithCallback] | None = None,
        *,
        no_local: bool = False,
    ) -> Subscription[ActionWithCallback]:
        """Subscribe to Actions; each carries a callback to send results.

        ``no_local``: the broker need not deliver this binding's own Actions back.
        """
        ...

    async def publish_query(
        self, query: Query, scope: Scope | str = Scope.COM, timeout: float | None = None
    ) -> ResultStream[QueryResult]:
        """Publish a Query; its results arrive on the returned stream."""
        ...

    async def request_query(
        self, query: Query, scope: Scope | str = Scope.COM, timeout: float = 1.0
    ) -> QueryResult:
        """Publish a Query and return its first result."""
        ...

    async def subscribe_query(
        self,
        filter: SubscriptionFilter,
        handler: Handler[QueryWithCallback] | None = None,
    ) -> Subscription[QueryWithCallback]:
        """Subscribe to Queries."""
        ...
