"""ddastate.config: defaults, the reference's dda.yaml, validation errors naming the field."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from ddastate.config import (
    COM_OPTION_DEFAULTS,
    STATE_OPTION_DEFAULTS,
    Config,
    ConfigError,
    parse_go_duration,
)

FIXTURES = Path(__file__).parent / "fixtures"


def test_defaults() -> None:
    cfg = Config()
    assert cfg.version == "1"
    assert cfg.identity.name == "DDA"
    assert uuid.UUID(cfg.identity.id).version == 4
    assert Config().identity.id != cfg.identity.id
    assert cfg.cluster == "dda"
    assert cfg.apis.grpc.address == ":8900"
    assert cfg.apis.grpc.disabled is False
    assert cfg.apis.grpc.keepalive == 7200.0
    assert cfg.apis.grpc.max_value_size == 1048576
    assert cfg.apis.grpc_web.address == ":8800"
    assert cfg.apis.grpc_web.access_control_allow_origin == []
    assert cfg.apis.cert == cfg.apis.key == ""
    com = cfg.services.com
    assert (com.protocol, com.url, com.disabled, com.opts) == (
        "mqtt5",
        "tcp://localhost:1883",
        False,
        {},
    )
    assert (com.auth.method, com.auth.verify, com.auth.username, com.auth.password) == (
        "none",
        True,
        "",
        "",
    )
    assert (cfg.services.store.engine, cfg.services.store.location) == ("sqlite", "")
    assert cfg.services.store.disabled is True
    st = cfg.services.state
    assert (st.protocol, st.store, st.bootstrap, st.disabled, st.opts) == (
        "raft",
        "",
        False,
        True,
        {},
    )
    assert st.opt("rpcTimeout") == 1000
    assert st.opt("installSnapshotTimeoutScale") == 262144
    assert com.opt("keepAlive") == 30
    assert com.opt("nonsense") is None
    cfg.validate()


def test_reference_dda_yaml_loads_with_defaults() -> None:
    cfg = Config.load(FIXTURES / "dda.reference.yaml")
    ref = Config()
    ref.identity.id = cfg.identity.id
    assert uuid.UUID(cfg.identity.id).version == 4
    assert cfg == ref


def test_full_file(tmp_path: Path) -> None:
    p = tmp_path / "dda.yaml"
    p.write_text(
        """
version: "1"
identity: {name: Member, id: m-1}
cluster: plant_7.a
apis:
  grpc: {address: "unix:/tmp/x.sock", disabled: true, keepalive: 1h30m, maxValueSize: 4096}
  grpc-web: {address: ":9", access-control-allow-origin: [https://a.org, https://b.com:4200],
             disabled: true}
  cert: c.pem
  key: k.pem
services:
  com:
    protocol: mqtt5
    url: wss://broker:443/mqtt
    auth: {method: tls, cert: cc.pem, key: ck.pem, verify: false, username: u, password: p}
    opts: {qos: 1, keepAlive: 5, connectRetryDelay: 250, connectTimeout: 3000, noLocal: true,
           strictClientId: true, debug: false, custom: [1, 2]}
    disabled: false
  store: {engine: pebble, location: ./store, disabled: false}
  state:
    protocol: raft
    store: /var/lib/dda
    bootstrap: true
    disabled: false
    opts:
      startupTimeout: 5000
      lfwTimeout: 5000
      rpcTimeout: 500
      heartbeatTimeout: 200
      electionTimeout: 200
      installSnapshotTimeoutScale: 1024
      snapshotInterval: 50
      snapshotThreshold: 40
      debug: true
      futureOption: hello
"""
    )
    cfg = Config.load(p)
    assert cfg.identity.name == "Member" and cfg.identity.id == "m-1"
    assert cfg.cluster == "plant_7.a"
    assert cfg.apis.grpc.address == "unix:/tmp/x.sock"
    assert cfg.apis.grpc.disabled is True
    assert cfg.apis.grpc.keepalive == 5400.0
    assert cfg.apis.grpc.max_value_size == 4096
    assert cfg.apis.grpc_web.access_control_allow_origin == ["https://a.org", "https://b.com:4200"]
    assert (cfg.apis.cert, cfg.apis.key) == ("c.pem", "k.pem")
    com = cfg.services.com
    assert com.url == "wss://broker:443/mqtt"
    assert com.auth.method == "tls" and com.auth.verify is False
    assert (com.auth.username, com.auth.password) == ("u", "p")
    assert com.opts["qos"] == 1 and com.opt("noLocal") is True
    assert com.opts["custom"] == [1, 2]  # unknown keys are kept
    assert cfg.services.store.engine == "pebble" and cfg.services.store.disabled is False
    st = cfg.services.state
    assert st.store == "/var/lib/dda" and st.bootstrap and not st.disabled
    assert st.opt("snapshotThreshold") == 40 and st.opt("snapshotInterval") == 50
    assert st.opts["futureOption"] == "hello"
    assert set(STATE_OPTION_DEFAULTS) <= set(st.opts)
    assert set(COM_OPTION_DEFAULTS) <= set(com.opts)


def test_int_version_and_empty_file(tmp_path: Path) -> None:
    assert Config.from_yaml("version: 1").version == "1"
    p = tmp_path / "empty.yaml"
    p.write_text("")
    assert Config.load(p).cluster == "dda"
    assert (
        Config.from_yaml("services:\n  state:\n    opts:\n      rpcTimeout:\n").services.state.opts
        == {}
    )


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [
        ('version: "2"', "version", "incompatible configuration version"),
        ("cluster: a/b", "cluster", "invalid cluster"),
        ('cluster: "with space"', "cluster", "invalid cluster"),
        ('cluster: ""', "cluster", "invalid cluster"),
        ('cluster: "dda\\n"', "cluster", "invalid cluster"),
        ("identity: {id: 'x/y'}", "identity.id", "invalid id"),
        ("identity: [1]", "identity", "expected a mapping"),
        ("services: {com: {protocol: amqp}}", "services.com.protocol", "unknown protocol"),
        ("services: {state: {protocol: paxos}}", "services.state.protocol", "unknown protocol"),
        ("services: {store: {engine: rocks}}", "services.store.engine", "unknown storage engine"),
        ("services: {com: {auth: {method: kerberos}}}", "services.com.auth.method", "unknown auth"),
        ("services: {com: {auth: {method: tls}}}", "services.com.auth.cert", "needs a client cert"),
        ("services: {com: {auth: {cert: a.pem}}}", "services.com.auth.cert", "set together"),
        ("services: {com: {auth: {verify: 'no'}}}", "services.com.auth.verify", "true or false"),
        ("services: {com: {opts: {qos: 3}}}", "services.com.opts.qos", "0, 1, 2"),
        ("services: {com: {opts: {qos: '1'}}}", "services.com.opts.qos", "0, 1, 2"),
        ("services: {com: {opts: {keepAlive: 1.5}}}", "services.com.opts.keepAlive", "integer"),
        ("services: {com: {opts: {noLocal: 1}}}", "services.com.opts.noLocal", "true or false"),
        (
            "services: {com: {opts: {connectTimeout: -1}}}",
            "services.com.opts.connectTimeout",
            ">= 0",
        ),
        ("services: {com: {opts: [1]}}", "services.com.opts", "mapping"),
        ("services: {com: {disabled: maybe}}", "services.com.disabled", "true or false"),
        (
            "services: {state: {opts: {rpcTimeout: '1s'}}}",
            "services.state.opts.rpcTimeout",
            "integer",
        ),
        (
            "services: {state: {opts: {snapshotThreshold: -1}}}",
            "services.state.opts.snapshotThreshold",
            ">= 0",
        ),
        ("services: {state: {opts: {debug: 'yes'}}}", "services.state.opts.debug", "true or false"),
        (
            "services: {state: {opts: {lfwTimeout: true}}}",
            "services.state.opts.lfwTimeout",
            "integer",
        ),
        (
            "services: {state: {opts: {installSnapshotTimeoutScale: 0}}}",
            "services.state.opts.installSnapshotTimeoutScale",
            ">= 1",
        ),
        ("services: {state: {bootstrap: 1}}", "services.state.bootstrap", "true or false"),
        ("services: {state: {store: [a]}}", "services.state.store", "expected a string"),
        ("apis: {grpc: {keepalive: 7200}}", "apis.grpc.keepalive", "duration"),
        ("apis: {grpc: {keepalive: 2 hours}}", "apis.grpc.keepalive", "duration"),
        ("apis: {cert: a.pem}", "apis.cert", "set together"),
        ("apis: {grpc: {maxValueSize: 0}}", "apis.grpc.maxValueSize", ">= 1"),
        ("apis: {grpc: {maxValueSize: 1MB}}", "apis.grpc.maxValueSize", "integer"),
        (
            "apis: {grpc-web: {access-control-allow-origin: {a: 1}}}",
            "apis.grpc-web.access-control-allow-origin",
            "list of strings",
        ),
    ],
)
def test_errors_name_the_field(text: str, field: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        Config.from_yaml(text)
    assert info.value.field == field
    assert str(info.value).startswith(field + ":")


def test_malformed_and_missing_files(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("version: [1\n")
    with pytest.raises(ConfigError, match="malformed YAML") as info:
        Config.load(p)
    assert "\n" not in str(info.value) and str(info.value).startswith(str(p))
    with pytest.raises(ConfigError, match="cannot read") as info:
        Config.load(tmp_path / "missing.yaml")
    assert str(info.value).startswith(str(tmp_path / "missing.yaml"))
    p.write_text("services: {state: {opts: {rpcTimeout: fast}}}\n")
    with pytest.raises(ConfigError) as info:
        Config.load(p)
    assert (
        str(info.value)
        == f"{p}: services.state.opts.rpcTimeout: expected an integer, got str 'fast'"
    )
    assert info.value.field == "services.state.opts.rpcTimeout"
    assert info.value.source == str(p)
    p.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        Config.load(p)


def test_programmatic_changes_are_validated() -> None:
    cfg = Config()
    cfg.services.state.opts["rpcTimeout"] = "fast"
    with pytest.raises(ConfigError, match=r"services\.state\.opts\.rpcTimeout"):
        cfg.validate()
    cfg = Config()
    cfg.cluster = "ok-cluster"
    c2 = cfg.copy()
    c2.cluster = "other"
    assert cfg.cluster == "ok-cluster"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2h", 7200.0),
        ("300ms", 0.3),
        ("1.5h", 5400.0),
        ("2h45m", 9900.0),
        ("1m30s", 90.0),
        ("10us", 1e-5),
        ("10µs", 1e-5),
        ("5ns", 5e-9),
        ("0", 0.0),
        ("-1s", -1.0),
        (".5s", 0.5),
    ],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "2", "h", "1x", "1h 2m", "1.2.3s"])
def test_bad_go_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_go_duration(text)


def test_unknown_keys_are_ignored_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    cfg = Config.from_yaml(
        "clustr: x\nservices:\n  com:\n    opt: {qos: 1}\n  state: {bootstrp: true}\n"
    )
    assert cfg.cluster == "dda" and cfg.services.com.opts == {}
    assert "'clustr'" in caplog.text
    assert "'services.com.opt'" in caplog.text
    assert "'services.state.bootstrp'" in caplog.text
