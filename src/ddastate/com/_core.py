"""Transport-independent machinery shared by the bindings: topic layout, local
routing of incoming messages to subscriptions, result routing by correlation
data, validation of names and of everything that arrives from the network.

A concrete binding implements ``open``/``close`` and three primitives
(``_send``, ``_subscribe_filter``, ``_unsubscribe_filter``), and feeds every
received message to :meth:`BindingCore._on_message` (or ``_dispatch`` inside its
own exception guard).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import re
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Generic, TypeVar

from ddastate._deadlines import DeadlineBuckets
from ddastate.com.api import (
    Action,
    ActionResult,
    ActionWithCallback,
    ComClosedError,
    ComError,
    ComNotOpenError,
    Event,
    Handler,
    Query,
    QueryResult,
    QueryWithCallback,
    ResultStream,
    Scope,
    SharedSubscriptionUnsupportedError,
    Subscription,
    SubscriptionFilter,
    validate_name,
    validate_non_empty,
)
from ddastate.config import Config

log = logging.getLogger("ddastate.com")

T = TypeVar("T")

LEVEL_EVENT = "evt"
LEVEL_ACTION = "act"
LEVEL_ACTION_RESULT = "acr"
LEVEL_QUERY = "qry"
LEVEL_QUERY_RESULT = "qrr"

_RESULT_LEVEL = {LEVEL_ACTION: LEVEL_ACTION_RESULT, LEVEL_QUERY: LEVEL_QUERY_RESULT}

SUB_ID_ACR = 1
SUB_ID_QRR = 2
_FIRST_SUB_ID = 3

UserProps = list[tuple[str, str]]

_SCOPES = {"": Scope.COM, "com": Scope.COM, "sta": Scope.STA, "sdc": Scope.SDC}


_BAD_TOPIC_CHARS = re.compile("[\x00-\x1f\x7f-\x9f+#\ufffe\uffff]")


def valid_publish_topic(topic: str) -> bool:
    """A topic we may publish to (a response topic received from the network).

    Brokers disconnect a client that publishes to a wildcard, a ``$`` topic or a
    topic with control characters (Mosquitto's UTF-8 rules), so such a response
    topic is refused before anything is sent."""
    return (
        bool(topic)
        and topic[0] != "$"
        and _BAD_TOPIC_CHARS.search(topic) is None
        and len(topic) <= 16383
    )


class _Route(Generic[T]):
    """One broker-level subscription (topic filter) and its local receivers."""

    __slots__ = ("filter", "level", "no_local", "ready", "receivers", "sub_id")

    def __init__(self, topic_filter: str, sub_id: int, level: str, no_local: bool) -> None:
        self.filter = topic_filter
        self.sub_id = sub_id
        self.level = level
        # the broker subscription skips this binding's own messages (MQTT 5 noLocal)
        self.no_local = no_local
        self.receivers: list[Subscription[T]] = []
        self.ready: asyncio.Future[None] | None = None


#: ``callback(result, None)`` with a request's first result, ``callback(None, error)`` otherwise
ResultCallback = Callable[[Any, BaseException | None], None]


class _Pending:
    """A request waiting for its result(s): a future (first result) or a stream."""

    __slots__ = ("callback", "deadline", "future", "level", "stream")

    def __init__(
        self,
        level: str,
        future: asyncio.Future[Any] | None = None,
        stream: ResultStream[Any] | None = None,
        callback: ResultCallback | None = None,
    ) -> None:
        self.level = level
        self.future = future
        self.stream = stream
        self.callback = callback
        self.deadline: set[bytes] | None = None  # its bucket in BindingCore._deadlines


class BindingCore:
    """Common part of every binding. Not used directly."""

    #: transport-level QoS for publications and subscriptions
    _qos: int = 0
    _no_local: bool = False
    _shared_sub_available: bool = True

    def __init__(self) -> None:
        self._cfg: Config | None = None
        self._open = False
        self._cluster = ""
        self._id = ""
        self._routes: dict[int, _Route[Any]] = {}
        self._routes_by_filter: dict[str, _Route[Any]] = {}
        self._next_sub_id = _FIRST_SUB_ID
        self._pending: dict[bytes, _Pending] = {}
        # expiry of pending requests, one timer per millisecond of deadlines
        self._deadlines: DeadlineBuckets[bytes] = DeadlineBuckets(self._request_expired)
        self._topic_cache: dict[tuple[str, str, str], tuple[str, str]] = {}
        self._topic_info: dict[str, tuple[str, str]] = {}
        self._tasks: set[asyncio.Future[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------------ hooks

    def _send(
        self,
        topic: str,
        payload: bytes,
        props: UserProps,
        response_topic: str | None,
        corr: bytes | None,
    ) -> None:
        raise NotImplementedError

    async def _subscribe_filter(
        self, topic_filter: str, sub_id: int, no_local: bool = False
    ) -> None:
        raise NotImplementedError

    def _unsubscribe_filter(self, topic_filter: str) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ identity

    def identity(self) -> str:
        """Own identity id (response topics end in it)."""
        return self._id

    @property
    def cluster(self) -> str:
        """Cluster name (first topic level)."""
        return self._cluster

    @property
    def is_open(self) -> bool:
        """True between a successful open() and close()."""
        return self._open

    def _setup(self, cfg: Config) -> None:
        cfg.validate()
        self._cfg = cfg
        self._topic_cache.clear()
        self._topic_info.clear()
        self._cluster = cfg.cluster
        self._id = cfg.identity.id
        self._loop = asyncio.get_running_loop()
        opts = cfg.services.com
        self._qos = int(opts.opt("qos"))
        self._no_local = bool(opts.opt("noLocal"))

    def _response_filters(self) -> list[tuple[str, int]]:
        c, i = self._cluster, self._id
        return [(f"{c}/+/acr/+/{i}", SUB_ID_ACR), (f"{c}/+/qrr/+/{i}", SUB_ID_QRR)]

    def _teardown(self) -> None:
        """End every subscription and pending request (binding closed)."""
        self._open = False
        routes = list(self._routes.values())
        self._routes.clear()
        self._routes_by_filter.clear()
        for r in routes:
            for s in list(r.receivers):
                s._on_close = None
                s._end()
            if r.ready is not None and not r.ready.done():
                r.ready.set_exception(ComClosedError("binding closed"))
        pending = list(self._pending.values())
        self._pending.clear()
        self._deadlines.clear()
        for p in pending:
            if p.future is not None and not p.future.done():
                p.future.set_exception(ComClosedError("binding closed"))
            if p.callback is not None:
                _call_back(p.callback, None, ComClosedError("binding closed"))
            if p.stream is not None:
                p.stream._on_close = None
                p.stream._end()
        for t in list(self._tasks):
            t.cancel()

    def _check_open(self, what: str) -> None:
        if not self._open:
            raise ComNotOpenError(f"{what} failed as binding is not open")

    # ------------------------------------------------------------------ topics

    def _topics(self, scope: Scope | str, level: str, type_: str) -> tuple[str, str]:
        """(publish topic, response topic) for a request; cached."""
        key = (scope if isinstance(scope, str) else str(scope), level, type_)
        t = self._topic_cache.get(key)
        if t is None:
            s = Scope.of(scope).value
            res_level = LEVEL_ACTION_RESULT if level == LEVEL_ACTION else LEVEL_QUERY_RESULT
            t = (
                f"{self._cluster}/{s}/{level}/{type_}",
                f"{self._cluster}/{s}/{res_level}/{type_}/{self._id}",
            )
            if len(self._topic_cache) > 4096:
                self._topic_cache.clear()
            self._topic_cache[key] = t
        return t

    def _filter_topic(self, f: SubscriptionFilter, level: str) -> str:
        topic = f"{self._cluster}/{f.scope.value}/{level}/{f.type}"
        if f.share:
            return f"$share/{f.share}/{topic}"
        return topic

    # ------------------------------------------------------------------ publish

    async def publish_event(self, event: Event, scope: Scope | str = Scope.COM) -> None:
        """Publish an Event (raises InvalidNameError, ComNotOpenError, ComNotConnectedError)."""
        validate_name(event.type, "Event Type")
        validate_non_empty(event.id, "Event Id")
        validate_non_empty(event.source, "Event Source")
        self._check_open("PublishEvent")
        topic = self._topics(scope, LEVEL_EVENT, event.type)[0]
        self._send(
            topic,
            event.data,
            [
                ("id", event.id),
                ("sr", event.source),
                ("tm", event.time),
                ("dt", event.data_content_type),
            ],
            None,
            None,
        )

    def _start_request(
        self,
        level: str,
        type_: str,
        id_: str,
        source: str,
        payload: bytes,
        dt: str,
        scope: Scope | str,
        pending: _Pending,
    ) -> bytes:
        name = "Action" if level == LEVEL_ACTION else "Query"
        validate_name(type_, name, "Type")
        validate_non_empty(id_, name, "Id")
        validate_non_empty(source, name, "Source")
        self._check_open(f"Publish{name}")
        topic, response_topic = self._topics(scope, level, type_)
        corr = _correlation.new()
        self._pending[corr] = pending
        try:
            self._send(
                topic, payload, [("id", id_), ("sr", source), ("dt", dt)], response_topic, corr
            )
        except BaseException:
            self._pending.pop(corr, None)
            raise
        return corr

    async def publish_action(
        self, action: Action, scope: Scope | str = Scope.COM, timeout: float | None = None
    ) -> ResultStream[ActionResult]:
        """Publish an Action; results arrive on the stream until aclose() or ``timeout``."""
        return self._publish_request(*_action_request(action), scope, timeout)

    async def publish_query(
        self, query: Query, scope: Scope | str = Scope.COM, timeout: float | None = None
    ) -> ResultStream[QueryResult]:
        """Publish a Query; results arrive on the stream until aclose() or ``timeout``."""
        return self._publish_request(
            LEVEL_QUERY,
            query.type,
            query.id,
            query.source,
            query.data,
            query.data_content_type,
            scope,
            timeout,
        )

    def _publish_request(
        self,
        level: str,
        type_: str,
        id_: str,
        source: str,
        payload: bytes,
        dt: str,
        scope: Scope | str,
        timeout: float | None,
    ) -> ResultStream[Any]:
        pending = _Pending(_RESULT_LEVEL[level])
        stream: ResultStream[Any] = ResultStream(b"", None)
        pending.stream = stream
        corr = self._start_request(level, type_, id_, source, payload, dt, scope, pending)
        stream.correlation_data = corr
        stream._on_close = lambda: self._forget(corr)
        if timeout is not None:
            assert self._loop is not None
            stream._timer = self._loop.call_later(timeout, stream._end)
        return stream

    def _forget(self, corr: bytes) -> None:
        self._pending.pop(corr, None)

    async def request_action(
        self, action: Action, scope: Scope | str = Scope.COM, timeout: float = 1.0
    ) -> ActionResult:
        """Publish an Action and return its first result (TimeoutError after ``timeout`` s)."""
        result: ActionResult = await self._request_future(*_action_request(action), scope, timeout)
        return result

    def request_action_callback(
        self,
        action: Action,
        scope: Scope | str,
        timeout: float,
        callback: Callable[[ActionResult | None, BaseException | None], None],
    ) -> Callable[[], None]:
        """``request_action`` with a callback: publish now, report the outcome once.

        ``callback(result, None)`` runs with the first result, straight from the
        receive path (no future, no extra event loop pass: keep it short and never
        block); ``callback(None, error)`` with TimeoutError after ``timeout`` seconds
        or ComClosedError when the binding closes. Returns a function that forgets
        the request; the callback is then never called. Invalid input and a closed
        binding raise at once, as in ``request_action``. For callers that send many
        requests from callbacks (the Raft transport), where a task or a future per
        request would cost more than the request.
        """
        loop = self._loop
        if loop is None:
            raise ComNotOpenError("request failed as binding is not open")
        pending = _Pending(LEVEL_ACTION_RESULT, callback=callback)
        corr = self._start_request(*_action_request(action), scope, pending)
        pending.deadline = self._deadlines.add(loop, corr, loop.time() + timeout)
        return partial(self._forget_callback, corr)

    def _request_expired(self, corr: bytes) -> None:
        pending = self._pending.get(corr)
        if pending is None:
            return
        if pending.future is not None:
            _expire(pending.future)  # its done callback forgets the request
            return
        del self._pending[corr]
        if pending.callback is not None:
            _call_back(pending.callback, None, TimeoutError("no result within the timeout"))

    def _forget_callback(self, corr: bytes) -> None:
        pending = self._pending.pop(corr, None)
        if pending is not None and pending.deadline is not None:
            pending.deadline.discard(corr)

    async def request_query(
        self, query: Query, scope: Scope | str = Scope.COM, timeout: float = 1.0
    ) -> QueryResult:
        """Publish a Query and return its first result (TimeoutError after ``timeout`` s)."""
        result: QueryResult = await self._request_future(
            LEVEL_QUERY,
            query.type,
            query.id,
            query.source,
            query.data,
            query.data_content_type,
            scope,
            timeout,
        )
        return result

    def _request_future(
        self,
        level: str,
        type_: str,
        id_: str,
        source: str,
        payload: bytes,
        dt: str,
        scope: Scope | str,
        timeout: float,
    ) -> asyncio.Future[Any]:
        """Publish a request; the future gets its first result, TimeoutError after
        ``timeout`` seconds or ComClosedError when the binding closes."""
        loop = self._loop
        if loop is None:
            raise ComNotOpenError("request failed as binding is not open")
        fut: asyncio.Future[Any] = loop.create_future()
        pending = _Pending(_RESULT_LEVEL[level], future=fut)
        corr = self._start_request(level, type_, id_, source, payload, dt, scope, pending)
        deadline = self._deadlines.add(loop, corr, loop.time() + timeout)
        pending_map = self._pending

        def finished(_: asyncio.Future[Any]) -> None:
            deadline.discard(corr)
            pending_map.pop(corr, None)

        fut.add_done_callback(finished)
        return fut

    def _send_result(
        self, response_topic: str, correlation_data: bytes, level: str, result: Any
    ) -> None:
        self._check_open("Callback")
        self._send(
            response_topic,
            result.data,
            [
                ("ct", result.context),
                ("dt", result.data_content_type),
                ("sq", str(result.sequence_number)),
            ],
            None,
            correlation_data,
        )

    # ------------------------------------------------------------------ subscribe

    async def subscribe_event(
        self, filter: SubscriptionFilter, handler: Handler[Event] | None = None
    ) -> Subscription[Event]:
        """Subscribe to Events of ``filter``; iterate the result, or pass ``handler``."""
        return await self._subscribe("Event", LEVEL_EVENT, filter, handler)

    async def subscribe_action(
        self,
        filter: SubscriptionFilter,
        handler: Handler[ActionWithCallback] | None = None,
        *,
        no_local: bool = False,
    ) -> Subscription[ActionWithCallback]:
        """Subscribe to Actions of ``filter``; ``handler`` (sync or async) gets each one.

        ``no_local`` asks the broker not to deliver this binding's own Actions back to
        it (MQTT 5 noLocal), to save the round trip. The binding holds one broker
        subscription per filter, made by the first subscription to it: a later one
        with ``no_local`` shares it (and may get own Actions), a later one without
        ``no_local`` on a filter subscribed with it raises ComError.
        """
        return await self._subscribe("Action", LEVEL_ACTION, filter, handler, no_local)

    async def subscribe_query(
        self,
        filter: SubscriptionFilter,
        handler: Handler[QueryWithCallback] | None = None,
    ) -> Subscription[QueryWithCallback]:
        """Subscribe to Queries of ``filter``."""
        return await self._subscribe("Query", LEVEL_QUERY, filter, handler)

    async def _subscribe(
        self,
        pattern: str,
        level: str,
        f: SubscriptionFilter,
        handler: Handler[Any] | None,
        no_local: bool = False,
    ) -> Subscription[Any]:
        validate_name(f.type, pattern, "Type")
        if f.share:
            validate_name(f.share, pattern, "Share")
        self._check_open(f"Subscribe{pattern}")
        if f.share and not self._shared_sub_available:
            raise SharedSubscriptionUnsupportedError(
                "shared subscriptions are not supported by the broker"
            )
        topic_filter = self._filter_topic(f, level)
        route = self._routes_by_filter.get(topic_filter)
        if route is None:
            sub_id = self._next_sub_id
            self._next_sub_id += 1
            route = _Route(topic_filter, sub_id, level, no_local)
            assert self._loop is not None
            route.ready = self._loop.create_future()
            self._routes[sub_id] = route
            self._routes_by_filter[topic_filter] = route
            try:
                await self._subscribe_filter(topic_filter, sub_id, no_local)
            except BaseException as exc:
                self._routes.pop(sub_id, None)
                self._routes_by_filter.pop(topic_filter, None)
                if not route.ready.done():
                    route.ready.set_exception(exc)
                    route.ready.exception()  # mark retrieved
                raise
            if not route.ready.done():
                route.ready.set_result(None)
        else:
            if route.no_local and not no_local:
                # Brokers need not change noLocal on a second SUBSCRIBE (Mosquitto 2.0
                # keeps it), and unsubscribing first would lose messages meanwhile.
                raise ComError(
                    f"Subscribe{pattern}: this binding subscribes to {topic_filter!r} "
                    "without its own messages (no_local); a subscription that wants them "
                    "cannot share that filter"
                )
            if route.ready is not None and not route.ready.done():
                await asyncio.shield(route.ready)
        sub: Subscription[Any] = Subscription(f, handler)
        r = route
        sub._on_close = lambda: self._remove_receiver(r, sub)
        route.receivers.append(sub)
        return sub

    def _remove_receiver(self, route: _Route[Any], sub: Subscription[Any]) -> None:
        try:
            route.receivers.remove(sub)
        except ValueError:
            return
        if not route.receivers and self._routes.get(route.sub_id) is route:
            del self._routes[route.sub_id]
            self._routes_by_filter.pop(route.filter, None)
            if self._open:
                try:
                    self._unsubscribe_filter(route.filter)
                except Exception as exc:
                    log.debug("unsubscribe %s failed: %s", route.filter, exc)

    def _active_filters(self) -> list[tuple[str, int, bool]]:
        """All broker subscriptions this binding holds, with their noLocal wish (for the
        resubscribe after a reconnect)."""
        return [(f, sid, False) for f, sid in self._response_filters()] + [
            (r.filter, r.sub_id, r.no_local) for r in self._routes.values()
        ]

    # ------------------------------------------------------------------ receive

    def _on_message(
        self,
        topic: str,
        payload: bytes,
        props: UserProps | None,
        response_topic: str | None,
        corr: bytes | None,
        sub_ids: list[int] | None,
    ) -> None:
        """Handle one incoming message; bad input is dropped with a log line."""
        try:
            self._dispatch(topic, payload, props, response_topic, corr, sub_ids)
        except Exception:
            log.exception("dropping message on %s: unexpected error", topic)

    def _dispatch(
        self,
        topic: str,
        payload: bytes,
        props: UserProps | None,
        response_topic: str | None,
        corr: bytes | None,
        sub_ids: list[int] | None,
    ) -> None:
        info = self._topic_info.get(topic)
        if info is None:
            info = self._parse_topic(topic)
            if info is None:
                return
        level, type_ = info
        if not props:
            log.warning("dropping message on %r without user properties", topic)
            return
        up = dict(reversed(props))  # the first occurrence of a key wins, as in Go
        if level in (LEVEL_ACTION_RESULT, LEVEL_QUERY_RESULT):
            sq = up.get("sq")
            # strictly a decimal int64, as Go's strconv.ParseInt(sq, 10, 64)
            if (
                sq is None
                or not sq.isascii()
                or not (sq.isdigit() or (sq[:1] == "-" and sq[1:].isdigit()))
                or not -(2**63) <= (seq := int(sq)) < 2**63
            ):
                log.warning("dropping result on %r: bad sequence number %r", topic, sq)
                return
            if corr is None:
                log.warning("dropping result on %r without correlation data", topic)
                return
            pending = self._pending.get(corr)
            if pending is None or pending.level != level:
                log.debug("dropping result on %r: no request waiting for it", topic)
                return
            if level == LEVEL_ACTION_RESULT:
                result: Any = ActionResult(up.get("ct", ""), payload, up.get("dt", ""), seq)
            else:
                result = QueryResult(up.get("ct", ""), payload, up.get("dt", ""), seq)
            fut = pending.future
            if fut is not None:
                if not fut.done():
                    fut.set_result(result)
            elif pending.callback is not None:
                self._forget_callback(corr)  # one result: the request is done
                _call_back(pending.callback, result, None)
            elif pending.stream is not None:
                pending.stream._put(result)
            return
        id_ = up.get("id")
        source = up.get("sr")
        if not id_ or not source:
            log.warning("dropping message on %r: missing id or source property", topic)
            return
        if level == LEVEL_EVENT:
            item: Any = Event(type_, id_, source, payload, up.get("tm", ""), up.get("dt", ""))
        elif level in (LEVEL_ACTION, LEVEL_QUERY):
            if corr is None or response_topic is None or not valid_publish_topic(response_topic):
                log.warning(
                    "dropping request on %r: missing or invalid response topic or correlation data",
                    topic,
                )
                return
            if level == LEVEL_ACTION:
                item = ActionWithCallback(
                    Action(type_, id_, source, payload, up.get("dt", "")),
                    self,
                    response_topic,
                    corr,
                )
            else:
                item = QueryWithCallback(
                    Query(type_, id_, source, payload, up.get("dt", "")),
                    self,
                    response_topic,
                    corr,
                )
        else:  # pragma: no cover - _parse_topic admits only known levels
            return
        if sub_ids:
            for sid in sub_ids:
                route = self._routes.get(sid)
                if route is not None and route.level == level:
                    self._deliver(route, item)
        else:
            # transport without subscription identifiers: match by topic
            for route in list(self._routes.values()):
                if route.level == level and _filter_matches_topic(route.filter, topic):
                    self._deliver(route, item)

    def _parse_topic(self, topic: str) -> tuple[str, str] | None:
        """(level, type) of a topic we may receive, or None (logged); cached."""
        levels = topic.split("/")
        n = len(levels)
        if n < 4 or n > 5:
            log.warning("dropping message on malformed topic %r", topic)
            return None
        if levels[0] != self._cluster:
            log.warning("dropping message on %r: foreign cluster", topic)
            return None
        if levels[1] not in _SCOPES:
            log.warning("dropping message on %r: unknown scope %r", topic, levels[1])
            return None
        level = levels[2]
        if level in (LEVEL_ACTION_RESULT, LEVEL_QUERY_RESULT):
            if n != 5:
                log.warning("dropping result on malformed topic %r", topic)
                return None
        elif level in (LEVEL_EVENT, LEVEL_ACTION, LEVEL_QUERY):
            if n != 4:
                log.warning("dropping message on malformed topic %r", topic)
                return None
        else:
            log.warning("dropping message on %r: unknown level %r", topic, level)
            return None
        info = (level, levels[3])
        if len(self._topic_info) > 4096:
            self._topic_info.clear()
        self._topic_info[topic] = info
        return info

    def _deliver(self, route: _Route[Any], item: Any) -> None:
        for sub in route.receivers:
            h = sub.handler
            if h is None:
                sub._put(item)
                continue
            try:
                r = h(item)
            except Exception:
                log.exception("subscription handler for %s failed", route.filter)
                continue
            if r is not None and inspect.isawaitable(r):
                self._spawn(r)

    def _spawn(self, aw: Awaitable[Any]) -> None:
        t = asyncio.ensure_future(aw)
        self._tasks.add(t)
        t.add_done_callback(self._task_done)

    def _task_done(self, t: asyncio.Future[Any]) -> None:
        self._tasks.discard(t)
        if not t.cancelled() and t.exception() is not None:
            log.error("subscription handler failed: %r", t.exception())


class _Uuid4Source:
    """Fresh UUID v4 strings (as bytes) for correlation data, random bytes read in bulk.

    ``str(uuid.uuid4())`` makes one getrandom call and a UUID object per request;
    this formats the same 36-byte text from a buffer refilled every 256 requests.
    """

    _BATCH = 256

    def __init__(self) -> None:
        self._buf = b""
        self._pos = 0

    def reset(self) -> None:
        """Forget the unread random bytes (a forked child must not replay its parent's)."""
        self._buf = b""
        self._pos = 0

    def new(self) -> bytes:
        pos = self._pos
        if pos >= len(self._buf):
            self._buf = os.urandom(16 * self._BATCH)
            pos = 0
        self._pos = pos + 16
        b = bytearray(self._buf[pos : pos + 16])
        b[6] = (b[6] & 0x0F) | 0x40  # version 4
        b[8] = (b[8] & 0x3F) | 0x80  # RFC 4122 variant
        h = b.hex()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}".encode()


_correlation = _Uuid4Source()
os.register_at_fork(after_in_child=_correlation.reset)


def _action_request(action: Action) -> tuple[str, str, str, str, bytes, str]:
    """An Action as the (level, type, id, source, payload, content type) of a request."""
    return (
        LEVEL_ACTION,
        action.type,
        action.id,
        action.source,
        action.params,
        action.data_content_type,
    )


def _call_back(callback: ResultCallback, result: Any, error: BaseException | None) -> None:
    try:
        callback(result, error)
    except Exception:
        log.exception("a request's result callback failed")


def _expire(fut: asyncio.Future[Any]) -> None:
    if not fut.done():
        fut.set_exception(TimeoutError("no result within the timeout"))


def _filter_matches_topic(topic_filter: str, topic: str) -> bool:
    if topic_filter.startswith("$share/"):
        topic_filter = topic_filter.split("/", 2)[2]
    return topic_matches(topic_filter, topic)


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT topic filter matching with ``+`` and ``#`` (no ``$share`` prefix)."""
    if topic_filter == topic:
        return True
    fl = topic_filter.split("/")
    tl = topic.split("/")
    for i, f in enumerate(fl):
        if f == "#":
            return True
        if i >= len(tl):
            return False
        if f != "+" and f != tl[i]:
            return False
    return len(fl) == len(tl)
