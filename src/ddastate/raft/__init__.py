"""ddastate.raft: an embeddable Raft consensus library shaped like hashicorp/raft.

It knows nothing of DDA: the FSM, the stores and the transport are pluggable
(see ``interfaces``). The consensus core is deterministic; ``Raft`` drives it on asyncio.
"""
