"""The ``ddastate`` command: sidecar, client and demo.

    ddastate run [-c dda.yaml]        the sidecar (gRPC StateService at apis.grpc.address)
    ddastate put KEY VALUE            propose a SET on a running sidecar
    ddastate delete KEY               propose a DELETE
    ddastate watch                    current state, then every change, until Ctrl-C
    ddastate members                  the members of the state group
    ddastate status                   this member's role, leader, term and indexes
    ddastate demo                     three members in one process, no broker needed

Client commands print tables by default and JSON with ``--json``; ``--address`` (or
``$DDASTATE_ADDRESS``) picks the sidecar, default ``localhost:8900``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from ddastate import __version__

DEFAULT_ADDRESS = "localhost:8900"


class CliError(Exception):
    """A failure reported to the user as one line, with an exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def _client_parent() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(
        "--address",
        "-a",
        default=os.environ.get("DDASTATE_ADDRESS", DEFAULT_ADDRESS),
        help="sidecar gRPC address: host:port or unix:path "
        "(default $DDASTATE_ADDRESS or %(default)s)",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="seconds to wait for the sidecar (default %(default)s)",
    )
    p.add_argument("--ca", default="", help="PEM file of the CA when the sidecar uses TLS")
    return p


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ddastate command."""
    parser = argparse.ArgumentParser(
        prog="ddastate",
        description="Replicated key-value state over pub-sub, kept consistent by Raft "
        "(a Python implementation of the DDA state synchronization service).",
        epilog="examples:\n"
        "  ddastate demo                          see a group of three at work\n"
        "  ddastate run -c examples/dda.yaml      run a sidecar\n"
        "  ddastate put greeting hello -a 127.0.0.1:8900\n"
        "  ddastate watch --json -a unix:/run/dda.sock\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ddastate {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    client = _client_parent()

    run = sub.add_parser(
        "run",
        help="run the sidecar",
        description="Run the sidecar: opens the com service, the state service (when "
        "enabled) and the gRPC server. Config file: -c, else $DDA_CONFIGFILE, else ./dda.yaml.",
    )
    run.add_argument("-c", "--config", default=None, help="DDA configuration file (YAML)")
    run.add_argument("--debug", action="store_true", help="log debug messages")

    put = sub.add_parser("put", parents=[client], help="set KEY to VALUE")
    put.add_argument("key")
    put.add_argument("value", nargs="?", help="the value as text (omit with --file)")
    put.add_argument("--file", "-f", default=None, help="read the value from a file ('-': stdin)")

    delete = sub.add_parser("delete", parents=[client], help="delete KEY")
    delete.add_argument("key")

    sub.add_parser(
        "watch",
        parents=[client],
        help="show the current state, then every change until Ctrl-C",
    )

    members = sub.add_parser("members", parents=[client], help="list the members of the group")
    members.add_argument(
        "--follow",
        action="store_true",
        help="stream joins and leaves until Ctrl-C (ObserveMembershipChange)",
    )

    sub.add_parser("status", parents=[client], help="this member's role, term and indexes")

    demo = sub.add_parser(
        "demo",
        help="three members in one process on the loopback bus",
        description="Three members in one process on the in-process loopback bus with "
        "durable SQLite stores in a temporary directory: writes from different members, "
        "stops the leader, shows the new election, restarts the old leader from its store "
        "and checks that all three states are equal.",
    )
    demo.add_argument(
        "--plain",
        action="store_true",
        help="no live redrawing: print the view as lines (default when not a terminal)",
    )
    demo.add_argument("--keep", action="store_true", help="keep the temporary directory")
    demo.add_argument("--writes", type=int, default=20, help="writes per phase (default 20)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ddastate`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            from ddastate.cli.sidecar import run_sidecar

            return run_sidecar(args.config, debug=args.debug)
        if args.command == "demo":
            from ddastate.cli.demo import run_demo

            return run_demo(plain=args.plain, keep=args.keep, writes=args.writes)
        from ddastate.cli import client_cmds

        return client_cmds.dispatch(args)
    except CliError as exc:
        print(f"ddastate: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
