"""In-process pub-sub bus with MQTT 5 semantics, and the binding that uses it.

``LoopbackBus`` plays the broker: topic filters with ``+``/``#``, shared
subscriptions (``$share/<group>/...``: each message goes to one member of each
group, round robin), noLocal, subscription identifiers, user properties,
response topic and correlation data. Clusters and scopes are isolated because
they are topic levels, exactly as on a broker.

Fault injection works per directed link between two members (identity ids):
``drop``, ``delay`` (+ ``jitter``), ``duplicate``, ``reorder`` (a random extra
delay up to the given window), ``partition`` / ``heal``. All randomness comes
from one ``random.Random(seed)``; with a seed and the same sequence of calls the
faults are the same. Delivery is always asynchronous (next loop iteration, or
later when delayed), never re-entrant.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ddastate.com._core import BindingCore, UserProps, topic_matches
from ddastate.com.api import ComNotOpenError
from ddastate.config import Config

__all__ = ["LinkFaults", "LoopbackBinding", "LoopbackBus"]

log = logging.getLogger("ddastate.com.loopback")


@dataclass
class LinkFaults:
    """Faults of one directed link. Probabilities in [0, 1], times in seconds."""

    drop: float = 0.0
    delay: float = 0.0
    jitter: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0

    @property
    def active(self) -> bool:
        """True if any fault is set."""
        return bool(self.drop or self.delay or self.jitter or self.duplicate or self.reorder)


class _Sub:
    __slots__ = ("binding", "filter", "group", "no_local", "sub_id", "topic_filter")

    def __init__(
        self, binding: LoopbackBinding, topic_filter: str, sub_id: int, no_local: bool
    ) -> None:
        self.binding = binding
        self.filter = topic_filter
        self.sub_id = sub_id
        self.group = ""
        self.topic_filter = topic_filter
        if topic_filter.startswith("$share/"):
            _, group, rest = topic_filter.split("/", 2)
            self.group = group
            self.topic_filter = rest
            no_local = False  # a protocol error on shared subscriptions; ignored
        self.no_local = no_local


class LoopbackBus:
    """The in-process broker. One per process (or per test); bindings attach to it."""

    def __init__(self, seed: int | None = None) -> None:
        self._subs: list[_Sub] = []
        self._cache: dict[str, tuple[list[_Sub], dict[tuple[str, str], list[_Sub]]]] = {}
        self._rr: dict[tuple[str, str], int] = {}
        self._rng = random.Random(seed)
        self._default_faults = LinkFaults()
        self._links: dict[tuple[str, str], LinkFaults] = {}
        self._partition: dict[str, int] | None = None
        self._any_faults = False
        self.delivered = 0
        self.dropped = 0

    # ------------------------------------------------------------------ faults

    def set_link(
        self,
        src: str,
        dst: str,
        *,
        drop: float = 0.0,
        delay: float = 0.0,
        jitter: float = 0.0,
        duplicate: float = 0.0,
        reorder: float = 0.0,
    ) -> None:
        """Set the faults of messages from member ``src`` to member ``dst`` ("*" = any)."""
        f = LinkFaults(drop, delay, jitter, duplicate, reorder)
        if src == "*" and dst == "*":
            self._default_faults = f
        else:
            self._links[(src, dst)] = f
        self._update_any()

    def set_faults(self, **faults: float) -> None:
        """Faults of every link without its own setting."""
        self.set_link("*", "*", **faults)

    def partition(self, *groups: Iterable[str]) -> None:
        """Split members into groups that cannot reach each other; unlisted members form
        one more group of their own each."""
        p: dict[str, int] = {}
        for i, g in enumerate(groups):
            for m in g:
                p[m] = i
        self._partition = p
        self._update_any()

    def isolate(self, member: str) -> None:
        """Cut ``member`` off from everyone else."""
        self.partition([member])

    def heal(self) -> None:
        """Remove every partition and every link fault."""
        self._partition = None
        self._links.clear()
        self._default_faults = LinkFaults()
        self._update_any()

    def _update_any(self) -> None:
        self._any_faults = (
            self._partition is not None
            or self._default_faults.active
            or any(f.active for f in self._links.values())
        )

    def _faults(self, src: str, dst: str) -> LinkFaults:
        links = self._links
        if links:
            f = links.get((src, dst)) or links.get((src, "*")) or links.get(("*", dst))
            if f is not None:
                return f
        return self._default_faults

    def _connected(self, src: str, dst: str) -> bool:
        p = self._partition
        if p is None or src == dst:
            return True
        gs = p.get(src)
        gd = p.get(dst)
        if gs is None and gd is None:
            return False  # two unlisted members: each is its own group
        return gs == gd

    # ------------------------------------------------------------------ subs

    def _subscribe(
        self, binding: LoopbackBinding, topic_filter: str, sub_id: int, no_local: bool
    ) -> None:
        self._unsubscribe(binding, topic_filter)
        self._subs.append(_Sub(binding, topic_filter, sub_id, binding._no_local or no_local))
        self._cache.clear()

    def _unsubscribe(self, binding: LoopbackBinding, topic_filter: str) -> None:
        n = len(self._subs)
        self._subs = [
            s for s in self._subs if not (s.binding is binding and s.filter == topic_filter)
        ]
        if len(self._subs) != n:
            self._cache.clear()

    def _detach(self, binding: LoopbackBinding) -> None:
        self._subs = [s for s in self._subs if s.binding is not binding]
        self._cache.clear()

    def _match(self, topic: str) -> tuple[list[_Sub], dict[tuple[str, str], list[_Sub]]]:
        m = self._cache.get(topic)
        if m is None:
            plain: list[_Sub] = []
            shared: dict[tuple[str, str], list[_Sub]] = {}
            for s in self._subs:
                if topic_matches(s.topic_filter, topic):
                    if s.group:
                        shared.setdefault((s.group, s.topic_filter), []).append(s)
                    else:
                        plain.append(s)
            m = (plain, shared)
            if len(self._cache) > 10000:
                self._cache.clear()
            self._cache[topic] = m
        return m

    # ------------------------------------------------------------------ publish

    def publish(
        self,
        topic: str,
        payload: bytes,
        props: UserProps | None = None,
        response_topic: str | None = None,
        correlation_data: bytes | None = None,
        sender: str = "",
    ) -> None:
        """Route one message, as a broker would. Also usable to inject raw messages."""
        plain, shared = self._match(topic)
        # one copy per subscribed binding, carrying all its matching subscription ids
        per_binding: dict[int, tuple[LoopbackBinding, list[int]]] = {}
        for s in plain:
            if s.no_local and s.binding._id == sender:
                continue
            e = per_binding.get(id(s.binding))
            if e is None:
                per_binding[id(s.binding)] = (s.binding, [s.sub_id])
            else:
                e[1].append(s.sub_id)
        targets: list[tuple[LoopbackBinding, list[int]]] = list(per_binding.values())
        for key, members in shared.items():
            i = self._rr.get(key, 0)
            self._rr[key] = i + 1
            s = members[i % len(members)]
            targets.append((s.binding, [s.sub_id]))
        for binding, ids in targets:
            self._deliver(
                binding, sender, topic, payload, props, response_topic, correlation_data, ids
            )

    def _deliver(
        self,
        b: LoopbackBinding,
        sender: str,
        topic: str,
        payload: bytes,
        props: UserProps | None,
        response_topic: str | None,
        corr: bytes | None,
        ids: list[int],
    ) -> None:
        loop = b._loop
        if loop is None or not b._open:
            return
        args = (topic, payload, props, response_topic, corr, ids)
        if not self._any_faults:
            self.delivered += 1
            loop.call_soon(b._receive, args)
            return
        dst = b._id
        if not self._connected(sender, dst):
            self.dropped += 1
            return
        f = self._faults(sender, dst)
        if not f.active:
            self.delivered += 1
            loop.call_soon(b._receive, args)
            return
        rng = self._rng
        if f.drop and rng.random() < f.drop:
            self.dropped += 1
            return
        copies = 2 if f.duplicate and rng.random() < f.duplicate else 1
        for _ in range(copies):
            d = f.delay
            if f.jitter:
                d += rng.random() * f.jitter
            if f.reorder:
                d += rng.random() * f.reorder
            self.delivered += 1
            if d > 0:
                loop.call_later(d, b._receive, args)
            else:
                loop.call_soon(b._receive, args)


class LoopbackBinding(BindingCore):
    """A member's binding to a LoopbackBus (protocol ``loopback``)."""

    def __init__(self, bus: LoopbackBus | None = None) -> None:
        super().__init__()
        self.bus = bus if bus is not None else LoopbackBus()

    async def open(self, cfg: Config, timeout: float | None = None) -> None:
        """Attach to the bus with ``cfg``'s cluster and identity."""
        if self._open:
            return
        self._setup(cfg)
        for f, sid in self._response_filters():
            self.bus._subscribe(self, f, sid, False)
        self._open = True

    async def close(self) -> None:
        """Detach from the bus; ends all subscriptions and pending requests."""
        if not self._open:
            return
        self.bus._detach(self)
        self._teardown()

    async def __aenter__(self) -> LoopbackBinding:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def _receive(self, args: tuple[Any, ...]) -> None:
        if self._open:
            self._on_message(*args)

    def _send(
        self,
        topic: str,
        payload: bytes,
        props: UserProps,
        response_topic: str | None,
        corr: bytes | None,
    ) -> None:
        if not self._open:
            raise ComNotOpenError("publish failed as binding is not open")
        self.bus.publish(topic, payload, props, response_topic, corr, self._id)

    async def _subscribe_filter(
        self, topic_filter: str, sub_id: int, no_local: bool = False
    ) -> None:
        self.bus._subscribe(self, topic_filter, sub_id, no_local)

    def _unsubscribe_filter(self, topic_filter: str) -> None:
        self.bus._unsubscribe(self, topic_filter)
