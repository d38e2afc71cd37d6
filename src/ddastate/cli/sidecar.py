"""``ddastate run``: the sidecar.

Order of start: read the configuration, claim the gRPC address (so a port in use fails
before anything joins a group), open the com service, open the state service (bootstrap
or join), start serving gRPC. SIGINT or SIGTERM stop it in reverse order: the gRPC server
stops, the member leaves its group (storage kept), the com service closes, exit 0.
Every failure on the way ends with one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from ddastate import __version__
from ddastate.apis.grpc.address import AddressError, parse_address
from ddastate.apis.grpc.server import GrpcServeError, GrpcServer
from ddastate.apis.grpc.status import StatusInfo, StatusSource
from ddastate.cli import CliError
from ddastate.cli.status import collect_status

log = logging.getLogger("ddastate.sidecar")

EXIT_CONFIG = 2
EXIT_STARTUP = 1


def resolve_config_path(option: str | None) -> Path:
    """``-c``, else ``$DDA_CONFIGFILE``, else ``./dda.yaml``."""
    if option:
        return Path(option)
    env = os.environ.get("DDA_CONFIGFILE")
    if env:
        return Path(env)
    return Path("dda.yaml")


def setup_logging(debug: bool) -> None:
    """Lifecycle lines at INFO on stderr; library chatter only with --debug."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.WARNING)
    log.setLevel(logging.DEBUG if debug else logging.INFO)


def load_config(path: Path) -> Any:
    """Load and validate the configuration; CliError(exit 2) with one line on failure."""
    from ddastate.config import Config, ConfigError

    if not path.exists():
        raise CliError(
            f"configuration file {str(path)!r} not found "
            "(give one with -c FILE or $DDA_CONFIGFILE; an example is examples/dda.yaml)",
            EXIT_CONFIG,
        )
    try:
        cfg = Config.load(path)
    except ConfigError as exc:
        text = " ".join(str(exc).split()).replace(' in "<unicode string>"', "")
        where = "" if str(path) in text else f" in {path}"
        raise CliError(f"configuration error{where}: {text}", EXIT_CONFIG) from None
    grpc_cfg = cfg.apis.grpc
    if not grpc_cfg.disabled:
        try:
            parse_address(grpc_cfg.address)
        except AddressError as exc:
            raise CliError(
                f"configuration error in {path}: apis.grpc.address: {exc}", EXIT_CONFIG
            ) from None
    if not cfg.services.state.disabled and cfg.services.com.disabled:
        raise CliError(
            f"configuration error in {path}: services.state needs services.com "
            "(services.com.disabled is true)",
            EXIT_CONFIG,
        )
    return cfg


def new_com(cfg: Any) -> Any:
    """The com binding for ``services.com.protocol``."""
    protocol = cfg.services.com.protocol
    if protocol == "mqtt5":
        from ddastate.com.mqtt5 import Mqtt5Binding

        return Mqtt5Binding()
    if protocol == "loopback":
        from ddastate.com.loopback import LoopbackBinding, LoopbackBus

        return LoopbackBinding(LoopbackBus())
    raise CliError(f"unknown services.com.protocol {protocol!r}", EXIT_CONFIG)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text


class Sidecar:
    """One sidecar: config, gRPC server, com and state, with ordered start and stop."""

    def __init__(self, cfg: Any, config_path: Path) -> None:
        self.cfg = cfg
        self.config_path = config_path
        self.com: Any = None
        self.state: Any = None
        self.server: GrpcServer | None = None
        self._com_open = False
        self._state_open = False

    def status_source(self) -> StatusSource:
        async def source() -> StatusInfo:
            return collect_status(self.cfg, self.state if self._state_open else None)

        return source

    async def start(self) -> None:
        cfg = self.cfg
        log.info(
            "ddastate %s sidecar starting: config %s, member %s (%s), cluster %s",
            __version__,
            self.config_path,
            cfg.identity.id,
            cfg.identity.name,
            cfg.cluster,
        )
        if not cfg.apis.grpc.disabled:
            try:
                self.server = GrpcServer(
                    cfg.apis.grpc.address,
                    state=self.state,
                    status=self.status_source(),
                    max_value_size=cfg.apis.grpc.max_value_size,
                    keepalive=cfg.apis.grpc.keepalive,
                    cert=cfg.apis.cert,
                    key=cfg.apis.key,
                )
                bound = self.server.bind()
            except AddressError as exc:
                raise CliError(
                    f"configuration error in {self.config_path}: apis.grpc.address: {exc}",
                    EXIT_CONFIG,
                ) from None
            except GrpcServeError as exc:
                raise CliError(f"gRPC server: {exc}", EXIT_STARTUP) from None
            log.info("gRPC: bound %s", bound.text if bound.unix else bound.bind_target)
        if not cfg.services.state.disabled:
            from ddastate.state.raft import RaftBinding

            self.state = RaftBinding()
            if self.server is not None:
                self.server.state_servicer.set_state(self.state)
        else:
            log.info("gRPC: disabled (apis.grpc.disabled)")
        if not cfg.apis.grpc_web.disabled:
            log.info("gRPC-Web: not offered by ddastate; apis.grpc-web is ignored")

        if not cfg.services.com.disabled:
            com_cfg = cfg.services.com
            self.com = new_com(cfg)
            log.info("com: opening %s at %s", com_cfg.protocol, com_cfg.url)
            connect_timeout = float(com_cfg.opt("connectTimeout") or 10000) / 1000.0
            try:
                await self.com.open(cfg, timeout=connect_timeout)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                raise CliError(
                    f"com: cannot open {com_cfg.protocol} at {com_cfg.url}: {_one_line(exc)}",
                    EXIT_STARTUP,
                ) from None
            self._com_open = True
            log.info("com: open (%s, %s)", com_cfg.protocol, com_cfg.url)
        else:
            log.info("com: disabled (services.com.disabled)")

        if self.state is not None:
            st = cfg.services.state
            log.info(
                "state: opening %s member %s (store %s, %s)",
                st.protocol,
                cfg.identity.id,
                st.store or "in memory",
                "bootstrap" if st.bootstrap else "join",
            )
            try:
                await self.state.open(cfg, self.com)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                raise CliError(f"state: cannot open: {_one_line(exc)}", EXIT_STARTUP) from None
            self._state_open = True
            info = collect_status(cfg, self.state)
            log.info(
                "state: open, role %s, leader %s, term %d",
                info.role,
                info.leader_id or "(none)",
                info.term,
            )
        else:
            log.info("state: disabled (services.state.disabled)")

        if self.server is not None:
            await self.server.start()
            log.info("gRPC: serving StateService and AdminService at %s", self.server.address.text)
        log.info("ready")

    async def stop(self) -> None:
        """Stop in reverse order; every step is attempted and logged."""
        if self.server is not None:
            try:
                await self.server.stop(grace=1.0)
                log.info("gRPC: stopped")
            except Exception as exc:
                log.warning("gRPC: stop failed: %s", _one_line(exc))
        if self.state is not None and self._state_open:
            log.info("state: leaving the group")
            try:
                await self.state.close()
                log.info("state: left the group (storage kept)")
            except Exception as exc:
                log.warning("state: leaving failed: %s", _one_line(exc))
            self._state_open = False
        if self.com is not None and self._com_open:
            try:
                await self.com.close()
                log.info("com: closed")
            except Exception as exc:
                log.warning("com: close failed: %s", _one_line(exc))
            self._com_open = False


async def _serve(cfg: Any, path: Path) -> int:
    loop = asyncio.get_running_loop()
    stop_signal: asyncio.Future[str] = loop.create_future()

    def on_signal(name: str) -> None:
        if not stop_signal.done():
            stop_signal.set_result(name)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig.name)
    sidecar = Sidecar(cfg, path)
    try:
        start: asyncio.Future[None] = asyncio.ensure_future(sidecar.start())
        waiters: list[asyncio.Future[Any]] = [start, stop_signal]
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        if not start.done():
            log.info("received %s during startup: stopping", stop_signal.result())
            start.cancel()
            with contextlib.suppress(asyncio.CancelledError, CliError):
                await start
            await sidecar.stop()
            log.info("stopped")
            return 0
        try:
            start.result()
        except CliError:
            await sidecar.stop()
            raise
        name = await stop_signal
        log.info("received %s: stopping", name)
        await sidecar.stop()
        log.info("stopped")
        return 0
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def _exit_quietly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def run_sidecar(config_option: str | None, *, debug: bool = False) -> int:
    """Run the sidecar until SIGINT/SIGTERM; returns the exit code."""
    # Until the event loop takes over (below), SIGTERM ends the process quietly with 0:
    # nothing has been opened yet.
    signal.signal(signal.SIGTERM, _exit_quietly)
    path = resolve_config_path(config_option)
    cfg = load_config(path)
    if cfg.services.state.opt("debug") or cfg.services.com.opt("debug"):
        debug = True
    setup_logging(debug)
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    try:
        return int(runner(_serve(cfg, path)))
    except CliError:
        raise
    except Exception as exc:  # last resort: one line, no traceback
        log.debug("sidecar failed", exc_info=True)
        raise CliError(f"sidecar failed: {type(exc).__name__}: {_one_line(exc)}") from None
