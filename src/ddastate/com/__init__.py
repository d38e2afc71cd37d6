"""Pub-sub communication: the API (``ddastate.com.api``), the in-process loopback
bus (``ddastate.com.loopback``) and the MQTT 5 binding (``ddastate.com.mqtt5``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ddastate.com.api import ComApi
from ddastate.config import COM_PROTOCOLS, Config, ConfigError

if TYPE_CHECKING:
    from ddastate.com.loopback import LoopbackBus

__all__ = ["new", "open_com"]


def new(protocol: str = "mqtt5", bus: LoopbackBus | None = None) -> ComApi:
    """A new, unopened binding for ``protocol`` ("mqtt5" or "loopback")."""
    if protocol == "mqtt5":
        from ddastate.com.mqtt5 import Mqtt5Binding

        return Mqtt5Binding()
    if protocol == "loopback":
        from ddastate.com.loopback import LoopbackBinding

        return LoopbackBinding(bus)
    raise ConfigError(
        "services.com.protocol",
        f"unknown protocol {protocol!r}, expected one of {', '.join(COM_PROTOCOLS)}",
    )


async def open_com(
    cfg: Config, bus: LoopbackBus | None = None, timeout: float | None = None
) -> ComApi:
    """A binding for ``cfg.services.com.protocol``, opened with ``cfg``."""
    com = new(cfg.services.com.protocol, bus)
    await com.open(cfg, timeout)
    return com
