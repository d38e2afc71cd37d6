"""ddastate.raft: an embeddable Raft consensus library shaped like hashicorp/raft.

It knows nothing of DDA: the FSM, the stores and the transport are pluggable
(see ``interfaces``). The consensus core is deterministic; ``Raft`` drives it on asyncio.

```python
from ddastate.raft import Raft, Config, Configuration, Server, InmemNetwork, ...
r = Raft(Config(local_id="n1"), fsm, log_store, stable_store, snapshot_store, transport)
async with r:
    await r.apply(b"command")
```
"""

from .commands import PROTOCOL_VERSION, SNAPSHOT_VERSION
from .config import Config, ConfigError, ReloadableConfig, default_config
from .configuration import (
    Configuration,
    ConfigurationError,
    Server,
    ServerSuffrage,
    decode_configuration,
    encode_configuration,
)
from .errors import (
    AbortedByRestoreError,
    CantBootstrapError,
    EnqueueTimeoutError,
    KeyNotFoundError,
    LeadershipLostError,
    LeadershipTransferInProgressError,
    LogNotFoundError,
    NothingNewToSnapshotError,
    NotLeaderError,
    NotVoterError,
    RaftError,
    RaftShutdownError,
    TransportShutdownError,
)
from .futures import ApplyFuture, ConfigurationFuture, IndexFuture, RaftFuture, SnapshotFuture
from .inmem import InmemLogStore, InmemNetwork, InmemStableStore, InmemTransport, LinkState
from .interfaces import (
    FSM,
    RPC,
    FSMSnapshot,
    LogStore,
    SnapshotMeta,
    SnapshotSink,
    SnapshotStore,
    StableStore,
    Transport,
)
from .log import Log, LogType
from .node import Raft, bootstrap_cluster, has_existing_state
from .observer import (
    FailedHeartbeatObservation,
    LeaderChanges,
    LeaderObservation,
    Observation,
    Observer,
    PeerObservation,
    RaftState,
    RequestVoteObservation,
    ResumedHeartbeatObservation,
)
from .snapshot_file import FileSnapshotStore
from .snapshot_inmem import InmemSnapshotStore

__all__ = [
    "FSM",
    "PROTOCOL_VERSION",
    "RPC",
    "SNAPSHOT_VERSION",
    "AbortedByRestoreError",
    "ApplyFuture",
    "CantBootstrapError",
    "Config",
    "ConfigError",
    "Configuration",
    "ConfigurationError",
    "ConfigurationFuture",
    "EnqueueTimeoutError",
    "FSMSnapshot",
    "FailedHeartbeatObservation",
    "FileSnapshotStore",
    "IndexFuture",
    "InmemLogStore",
    "InmemNetwork",
    "InmemSnapshotStore",
    "InmemStableStore",
    "InmemTransport",
    "KeyNotFoundError",
    "LeaderChanges",
    "LeaderObservation",
    "LeadershipLostError",
    "LeadershipTransferInProgressError",
    "LinkState",
    "Log",
    "LogNotFoundError",
    "LogStore",
    "LogType",
    "NotLeaderError",
    "NotVoterError",
    "NothingNewToSnapshotError",
    "Observation",
    "Observer",
    "PeerObservation",
    "Raft",
    "RaftError",
    "RaftFuture",
    "RaftShutdownError",
    "RaftState",
    "ReloadableConfig",
    "RequestVoteObservation",
    "ResumedHeartbeatObservation",
    "Server",
    "ServerSuffrage",
    "SnapshotFuture",
    "SnapshotMeta",
    "SnapshotSink",
    "SnapshotStore",
    "StableStore",
    "Transport",
    "TransportShutdownError",
    "bootstrap_cluster",
    "decode_configuration",
    "default_config",
    "encode_configuration",
    "has_existing_state",
]
