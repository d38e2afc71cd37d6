"""DDA configuration, schema version "1".

`Config()` gives the defaults; `Config.load(path)` reads a DDA YAML file (the
reference's own commented ``dda.yaml`` included: keys left empty keep their
defaults). Every error names the offending field, e.g.
``ConfigError: services.com.opts.qos: expected one of 0, 1, 2, got 3``.

YAML keys are the reference's (lower case, ``grpc-web``,
``access-control-allow-origin``); Python attributes use snake_case.
Time-valued options in ``services.*.opts`` are integers in the unit of the
reference (milliseconds, except ``keepAlive`` in seconds); ``apis.grpc.keepalive``
is a Go duration string such as ``"2h"`` or ``"300ms"`` and is held here as
float seconds.
"""

from __future__ import annotations

import copy
import logging
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "COM_OPTION_DEFAULTS",
    "COM_PROTOCOLS",
    "CONFIG_SCHEMA_VERSION",
    "STATE_OPTION_DEFAULTS",
    "STATE_PROTOCOLS",
    "STORE_ENGINES",
    "Apis",
    "Auth",
    "ComService",
    "Config",
    "ConfigError",
    "GrpcApi",
    "GrpcWebApi",
    "Identity",
    "Services",
    "StateService",
    "StoreService",
    "is_valid_name",
    "parse_go_duration",
]

log = logging.getLogger(__name__)

CONFIG_SCHEMA_VERSION = "1"
NAME_PATTERN = re.compile(r"[-_.0-9a-zA-Z]+")  # used with fullmatch (Go: ^...$)

COM_PROTOCOLS = ("mqtt5", "loopback")
"""mqtt5 is the reference's; loopback is ddastate's in-process bus."""
STATE_PROTOCOLS = ("raft",)
STORE_ENGINES = ("sqlite", "pebble", "memory")
"""sqlite is ddastate's default; a file saying pebble (the reference's engine) still loads."""
AUTH_METHODS = ("none", "", "tls")

COM_OPTION_DEFAULTS: dict[str, Any] = {
    "debug": False,
    "qos": 0,
    "strictClientId": False,
    "keepAlive": 30,  # seconds
    "connectRetryDelay": 1000,  # ms
    "connectTimeout": 10000,  # ms
    "noLocal": False,
}
"""Known options of services.com.opts (protocol mqtt5) and their defaults."""

STATE_OPTION_DEFAULTS: dict[str, Any] = {
    "debug": False,
    "startupTimeout": 10000,  # ms
    "lfwTimeout": 20000,  # ms
    "rpcTimeout": 1000,  # ms
    "heartbeatTimeout": 1000,  # ms
    "electionTimeout": 1000,  # ms
    "installSnapshotTimeoutScale": 256 * 1024,  # bytes
    "snapshotInterval": 120000,  # ms
    "snapshotThreshold": 8192,  # log entries
}
"""Known options of services.state.opts (protocol raft) and their defaults."""


class ConfigError(ValueError):
    """A configuration value is wrong; ``field`` is its dotted path, ``source`` the file.

    ``str()`` is one line: ``[<file>: ]<field>: <what is wrong>``.
    """

    def __init__(self, field_path: str, message: str, source: str = "") -> None:
        message = " ".join(message.split())  # always one line
        self.field = field_path
        self.message = message
        self.source = source
        text = f"{field_path}: {message}" if field_path else message
        super().__init__(f"{source}: {text}" if source else text)

    def with_source(self, source: str) -> ConfigError:
        """The same error naming the file it came from."""
        return ConfigError(self.field, self.message, source)


def is_valid_name(name: str) -> bool:
    """True if ``name`` follows the DDA naming rule ``^[-_.0-9a-zA-Z]+$``."""
    return isinstance(name, str) and NAME_PATTERN.fullmatch(name) is not None


_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_go_duration(text: str) -> float:
    """Parse a Go duration string (``"300ms"``, ``"1.5h"``, ``"2h45m"``) to seconds."""
    s = text.strip()
    if not s:
        raise ValueError("empty duration")
    sign = 1.0
    if s[0] in "+-":
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return 0.0
    pos = 0
    total = 0.0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if m is None:
            raise ValueError(f"invalid duration {text!r}")
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    return sign * total


# --------------------------------------------------------------------------- typed readers


def _str(value: Any, path: str) -> str:
    # Go's yaml.v3 takes any scalar into a string field; we accept str and int.
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise ConfigError(path, f"expected a string, got {type(value).__name__} {value!r}")


def _bool(value: Any, path: str) -> bool:
    if isinstance(value, bool):
        return value
    raise ConfigError(path, f"expected true or false, got {type(value).__name__} {value!r}")


def _int(value: Any, path: str, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(path, f"expected an integer, got {type(value).__name__} {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(path, f"must be >= {minimum}, got {value}")
    return value


def _map(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(path, f"expected a mapping, got {type(value).__name__} {value!r}")
    out: dict[str, Any] = {}
    for k, v in value.items():
        if not isinstance(k, str):
            raise ConfigError(path, f"keys must be strings, got {k!r}")
        out[k] = v
    return out


def _str_list(value: Any, path: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise ConfigError(path, f"expected a list of strings, got {type(value).__name__}")
    return [_str(v, f"{path}[{i}]") for i, v in enumerate(value)]


def _duration(value: Any, path: str) -> float:
    if isinstance(value, str):
        try:
            return parse_go_duration(value)
        except ValueError as exc:
            raise ConfigError(
                path, f'expected a duration like "2h" or "300ms", got {value!r}'
            ) from exc
    raise ConfigError(path, f'expected a duration string like "2h" or "300ms", got {value!r}')


def _choice(value: str, choices: tuple[str, ...], path: str, what: str) -> str:
    if value not in choices:
        raise ConfigError(path, f"unknown {what} {value!r}, expected one of {', '.join(choices)}")
    return value


def _check_opt_bool(v: Any, p: str) -> None:
    _bool(v, p)


def _check_opt_nonneg(v: Any, p: str) -> None:
    _int(v, p, 0)


def _check_opt_pos(v: Any, p: str) -> None:
    _int(v, p, 1)


def _check_qos(v: Any, p: str) -> None:
    if isinstance(v, bool) or v not in (0, 1, 2):
        raise ConfigError(p, f"expected one of 0, 1, 2, got {v!r}")


_COM_OPTION_CHECKS: dict[str, Callable[[Any, str], None]] = {
    "debug": _check_opt_bool,
    "qos": _check_qos,
    "strictClientId": _check_opt_bool,
    "keepAlive": _check_opt_nonneg,
    "connectRetryDelay": _check_opt_nonneg,
    "connectTimeout": _check_opt_nonneg,
    "noLocal": _check_opt_bool,
}

_STATE_OPTION_CHECKS: dict[str, Callable[[Any, str], None]] = {
    "debug": _check_opt_bool,
    "startupTimeout": _check_opt_nonneg,
    "lfwTimeout": _check_opt_nonneg,
    "rpcTimeout": _check_opt_nonneg,
    "heartbeatTimeout": _check_opt_nonneg,
    "electionTimeout": _check_opt_nonneg,
    "installSnapshotTimeoutScale": _check_opt_pos,
    "snapshotInterval": _check_opt_nonneg,
    "snapshotThreshold": _check_opt_nonneg,
}


def _opts(
    value: Any, path: str, checks: Mapping[str, Callable[[Any, str], None]]
) -> dict[str, Any]:
    if value is None:
        return {}
    raw = _map(value, path)
    out: dict[str, Any] = {}
    for k, v in raw.items():
        if v is None:  # key present but empty: the default applies
            continue
        check = checks.get(k)
        if check is not None:
            check(v, f"{path}.{k}")
        out[k] = v  # unknown keys are kept for the binding that knows them
    return out


# --------------------------------------------------------------------------- dataclasses


@dataclass
class Identity:
    """Identity of an agent: name (default "DDA") and unique id (default a fresh UUID v4)."""

    name: str = "DDA"
    id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class GrpcApi:
    """apis.grpc: address ("host:port" or "unix:path"), disabled, keepalive (seconds).

    ``max_value_size`` (YAML ``maxValueSize``, bytes) is a ddastate extension: the
    largest value a ProposeInput may carry.
    """

    address: str = ":8900"
    disabled: bool = False
    keepalive: float = 7200.0
    max_value_size: int = 1048576


@dataclass
class GrpcWebApi:
    """apis.grpc-web."""

    address: str = ":8800"
    disabled: bool = False
    access_control_allow_origin: list[str] = field(default_factory=list)


@dataclass
class Apis:
    """apis: client API servers and their TLS certificate and key files."""

    grpc: GrpcApi = field(default_factory=GrpcApi)
    grpc_web: GrpcWebApi = field(default_factory=GrpcWebApi)
    cert: str = ""
    key: str = ""


@dataclass
class Auth:
    """services.com.auth: method "none" or "tls"; username/password usable with either."""

    method: str = "none"
    cert: str = ""
    key: str = ""
    verify: bool = True
    username: str = ""
    password: str = ""


@dataclass
class ComService:
    """services.com: pub-sub protocol, broker url, auth, protocol options."""

    protocol: str = "mqtt5"
    url: str = "tcp://localhost:1883"
    auth: Auth = field(default_factory=Auth)
    opts: dict[str, Any] = field(default_factory=dict)
    disabled: bool = False

    def opt(self, name: str) -> Any:
        """Value of option ``name``, or its default (None for an unknown option)."""
        if name in self.opts:
            return self.opts[name]
        return COM_OPTION_DEFAULTS.get(name)


@dataclass
class StoreService:
    """services.store: engine ("sqlite" default; "pebble" accepted), location ("" = memory)."""

    engine: str = "sqlite"
    location: str = ""
    disabled: bool = True


@dataclass
class StateService:
    """services.state: consensus protocol, store location ("" = memory), bootstrap, options."""

    protocol: str = "raft"
    store: str = ""
    bootstrap: bool = False
    disabled: bool = True
    opts: dict[str, Any] = field(default_factory=dict)

    def opt(self, name: str) -> Any:
        """Value of option ``name``, or its default (None for an unknown option)."""
        if name in self.opts:
            return self.opts[name]
        return STATE_OPTION_DEFAULTS.get(name)


@dataclass
class Services:
    """services: com, store and state."""

    com: ComService = field(default_factory=ComService)
    store: StoreService = field(default_factory=StoreService)
    state: StateService = field(default_factory=StateService)


_TOP_KEYS = {"version", "identity", "cluster", "apis", "services"}


@dataclass
class Config:
    """The complete DDA configuration. ``Config()`` holds the defaults."""

    version: str = CONFIG_SCHEMA_VERSION
    identity: Identity = field(default_factory=Identity)
    cluster: str = "dda"
    apis: Apis = field(default_factory=Apis)
    services: Services = field(default_factory=Services)

    # ------------------------------------------------------------------ loading

    @classmethod
    def load(cls, path: str | Path) -> Config:
        """Read and validate a DDA YAML file."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError("", f"cannot read configuration file: {exc}", str(p)) from exc
        try:
            return cls.from_yaml(text, source=str(p))
        except ConfigError as exc:
            if exc.source:
                raise
            raise exc.with_source(str(p)) from None

    @classmethod
    def from_yaml(cls, text: str, source: str = "<string>") -> Config:
        """Parse and validate DDA YAML text."""
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError("", f"malformed YAML: {exc}", source) from exc
        if data is None:
            data = {}
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Any) -> Config:
        """Build from a mapping shaped like the YAML file (keys as in the YAML)."""
        d = _map(data, "<root>") if data is not None else {}
        cfg = cls()
        _warn_unknown(d, _TOP_KEYS, "")
        if d.get("version") is not None:
            cfg.version = _str(d["version"], "version")
        ident = _sub(d, "identity")
        _warn_unknown(ident, {"name", "id"}, "identity.")
        if ident.get("name") is not None:
            cfg.identity.name = _str(ident["name"], "identity.name")
        if ident.get("id") is not None:
            cfg.identity.id = _str(ident["id"], "identity.id")
        if d.get("cluster") is not None:
            cfg.cluster = _str(d["cluster"], "cluster")

        apis = _sub(d, "apis")
        _warn_unknown(apis, {"grpc", "grpc-web", "cert", "key"}, "apis.")
        grpc = _sub(apis, "grpc", "apis.")
        _warn_unknown(grpc, {"address", "disabled", "keepalive", "maxValueSize"}, "apis.grpc.")
        _set(cfg.apis.grpc, "address", grpc, "apis.grpc.address", _str)
        _set(cfg.apis.grpc, "disabled", grpc, "apis.grpc.disabled", _bool)
        _set(cfg.apis.grpc, "keepalive", grpc, "apis.grpc.keepalive", _duration)
        _set(cfg.apis.grpc, "max_value_size", grpc, "apis.grpc.maxValueSize", _int)
        web = _sub(apis, "grpc-web", "apis.")
        _warn_unknown(web, {"address", "disabled", "access-control-allow-origin"}, "apis.grpc-web.")
        _set(cfg.apis.grpc_web, "address", web, "apis.grpc-web.address", _str)
        _set(cfg.apis.grpc_web, "disabled", web, "apis.grpc-web.disabled", _bool)
        if web.get("access-control-allow-origin") is not None:
            cfg.apis.grpc_web.access_control_allow_origin = _str_list(
                web["access-control-allow-origin"], "apis.grpc-web.access-control-allow-origin"
            )
        _set(cfg.apis, "cert", apis, "apis.cert", _str)
        _set(cfg.apis, "key", apis, "apis.key", _str)

        services = _sub(d, "services")
        _warn_unknown(services, {"com", "store", "state"}, "services.")
        com = _sub(services, "com", "services.")
        _warn_unknown(com, {"protocol", "url", "auth", "opts", "disabled"}, "services.com.")
        c = cfg.services.com
        _set(c, "protocol", com, "services.com.protocol", _str)
        _set(c, "url", com, "services.com.url", _str)
        auth = _sub(com, "auth", "services.com.")
        _warn_unknown(
            auth, {"method", "cert", "key", "verify", "username", "password"}, "services.com.auth."
        )
        for name in ("method", "cert", "key", "username", "password"):
            _set(c.auth, name, auth, f"services.com.auth.{name}", _str)
        _set(c.auth, "verify", auth, "services.com.auth.verify", _bool)
        c.opts = _opts(com.get("opts"), "services.com.opts", {})
        _set(c, "disabled", com, "services.com.disabled", _bool)

        store = _sub(services, "store", "services.")
        _warn_unknown(store, {"engine", "location", "disabled"}, "services.store.")
        for name in ("engine", "location"):
            _set(cfg.services.store, name, store, f"services.store.{name}", _str)
        _set(cfg.services.store, "disabled", store, "services.store.disabled", _bool)

        state = _sub(services, "state", "services.")
        _warn_unknown(
            state, {"protocol", "store", "bootstrap", "disabled", "opts"}, "services.state."
        )
        st = cfg.services.state
        _set(st, "protocol", state, "services.state.protocol", _str)
        _set(st, "store", state, "services.state.store", _str)
        _set(st, "bootstrap", state, "services.state.bootstrap", _bool)
        _set(st, "disabled", state, "services.state.disabled", _bool)
        st.opts = _opts(state.get("opts"), "services.state.opts", {})

        cfg.validate()
        return cfg

    # ------------------------------------------------------------------ validation

    def validate(self) -> Config:
        """Check every field; raise ConfigError naming the first wrong one. Returns self."""
        if self.version != CONFIG_SCHEMA_VERSION:
            raise ConfigError(
                "version",
                f"incompatible configuration version {self.version!r}, "
                f"requiring version {CONFIG_SCHEMA_VERSION!r}",
            )
        _str(self.identity.name, "identity.name")
        if not is_valid_name(self.identity.id):
            raise ConfigError(
                "identity.id",
                f"invalid id {self.identity.id!r}: must be non-empty and only contain "
                "characters 0-9, a-z, A-Z, dot, hyphen, or underscore",
            )
        if not is_valid_name(self.cluster):
            raise ConfigError(
                "cluster",
                f"invalid cluster {self.cluster!r}: must only contain characters 0-9, "
                "a-z, A-Z, dot, hyphen, or underscore",
            )
        if bool(self.apis.cert) != bool(self.apis.key):
            raise ConfigError("apis.cert", "apis.cert and apis.key must be set together")
        _int(self.apis.grpc.max_value_size, "apis.grpc.maxValueSize", 1)
        if self.apis.grpc.keepalive < 0:
            raise ConfigError("apis.grpc.keepalive", "must not be negative")
        c = self.services.com
        _choice(c.protocol, COM_PROTOCOLS, "services.com.protocol", "protocol")
        _str(c.url, "services.com.url")
        _choice(c.auth.method, AUTH_METHODS, "services.com.auth.method", "auth method")
        if bool(c.auth.cert) != bool(c.auth.key):
            raise ConfigError(
                "services.com.auth.cert", "services.com.auth.cert and .key must be set together"
            )
        if c.auth.method == "tls" and not c.auth.cert:
            raise ConfigError(
                "services.com.auth.cert", "auth method tls needs a client cert and key file"
            )
        _bool(c.auth.verify, "services.com.auth.verify")
        c.opts = _opts(c.opts, "services.com.opts", _COM_OPTION_CHECKS)
        _choice(
            self.services.store.engine, STORE_ENGINES, "services.store.engine", "storage engine"
        )
        st = self.services.state
        _choice(st.protocol, STATE_PROTOCOLS, "services.state.protocol", "protocol")
        _str(st.store, "services.state.store")
        _bool(st.bootstrap, "services.state.bootstrap")
        st.opts = _opts(st.opts, "services.state.opts", _STATE_OPTION_CHECKS)
        return self

    def copy(self) -> Config:
        """A deep copy (e.g. to derive per-member configs in tests)."""
        return copy.deepcopy(self)


def _warn_unknown(d: Mapping[str, Any], known: set[str], prefix: str) -> None:
    # the reference ignores unknown keys too; a warning helps with typos
    for key in d:
        if key not in known:
            log.warning("configuration: ignoring unknown key %r", prefix + str(key))


def _sub(d: Mapping[str, Any], key: str, prefix: str = "") -> dict[str, Any]:
    v = d.get(key)
    if v is None:
        return {}
    return _map(v, prefix + key)


def _set(
    obj: object,
    attr: str,
    src: Mapping[str, Any],
    path: str,
    conv: Callable[[Any, str], Any],
) -> None:
    key = path.rsplit(".", 1)[-1]
    v = src.get(key)
    if v is not None:
        setattr(obj, attr, conv(v, path))
