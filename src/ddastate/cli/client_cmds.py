"""Client commands of ``ddastate``: put, delete, watch, members, status."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc

from ddastate.apis.grpc.address import AddressError
from ddastate.apis.grpc.client import StateClient
from ddastate.apis.grpc.status import MemberInfo, StatusInfo
from ddastate.cli import CliError, render
from ddastate.state.api import InputOp

T = TypeVar("T")


def dispatch(args: argparse.Namespace) -> int:
    """Run one client command; returns the exit code."""
    handlers: dict[str, Callable[[StateClient, argparse.Namespace], Awaitable[int]]] = {
        "put": _put,
        "delete": _delete,
        "watch": _watch,
        "members": _members,
        "status": _status,
    }
    handler = handlers[args.command]

    async def go() -> int:
        try:
            client = StateClient(args.address, ca_file=args.ca)
        except AddressError as exc:
            raise CliError(str(exc), 2) from None
        except OSError as exc:
            raise CliError(f"cannot read --ca file: {exc}", 2) from None
        async with client:
            try:
                return await handler(client, args)
            except grpc.aio.AioRpcError as exc:
                raise CliError(_rpc_message(args, exc)) from None

    if args.command in ("watch",) or (args.command == "members" and args.follow):
        return _run_until_interrupted(go())
    return asyncio.run(go())


def _run_until_interrupted(coro: Awaitable[int]) -> int:
    """Run a streaming command; Ctrl-C or SIGTERM ends it with exit code 0."""

    async def main() -> int:
        task = asyncio.ensure_future(coro)
        loop = asyncio.get_running_loop()
        stopped = False

        def stop() -> None:
            nonlocal stopped
            stopped = True
            task.cancel()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop)
        try:
            return await task
        except asyncio.CancelledError:
            if stopped:
                return 0
            raise
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    return asyncio.run(main())


def _rpc_message(args: argparse.Namespace, exc: grpc.aio.AioRpcError) -> str:
    code = exc.code()
    details = exc.details() or ""
    if code is grpc.StatusCode.UNAVAILABLE and (
        "connect" in details.lower() or "refused" in details.lower() or "no such file" in details
    ):
        return (
            f"cannot reach a sidecar at {args.address} ({details}); "
            "is `ddastate run` running there? (pick another with --address)"
        )
    streaming = args.command == "watch" or (args.command == "members" and args.follow)
    if streaming and code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
        return f"the sidecar at {args.address} closed the stream (stopping?): {details}"
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"{args.command}: no answer from {args.address} within {args.timeout:g} s"
    if code is grpc.StatusCode.UNIMPLEMENTED and args.command == "status":
        return f"the sidecar at {args.address} has no admin service (not a ddastate sidecar?)"
    name = code.name if code is not None else "UNKNOWN"
    return f"{args.command} failed: {name}: {details}"


async def _put(client: StateClient, args: argparse.Namespace) -> int:
    if args.file is not None:
        if args.value is not None:
            raise CliError("give VALUE or --file, not both", 2)
        value = _read_value_file(args.file)
    elif args.value is None:
        raise CliError("put needs a VALUE (or --file PATH)", 2)
    else:
        value = args.value.encode("utf-8")
    await client.put(args.key, value, deadline=args.timeout)
    if args.json:
        print(f'{{"ok": true, "op": "set", "key": {_q(args.key)}, "size": {len(value)}}}')
    else:
        print(f"set {args.key} ({len(value)} bytes)")
    return 0


def _read_value_file(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise CliError(f"cannot read value file: {exc}", 2) from None


def _q(text: str) -> str:
    import json

    return json.dumps(text, ensure_ascii=False)


async def _delete(client: StateClient, args: argparse.Namespace) -> int:
    await client.delete(args.key, deadline=args.timeout)
    if args.json:
        print(f'{{"ok": true, "op": "delete", "key": {_q(args.key)}}}')
    else:
        print(f"deleted {args.key}")
    return 0


async def _watch(client: StateClient, args: argparse.Namespace) -> int:
    if not args.json:
        print(f"watching {args.address} (Ctrl-C to stop)", file=sys.stderr, flush=True)
    async for change in client.state_changes():
        if args.json:
            print(render.input_json(change), flush=True)
            continue
        stamp = time.strftime("%H:%M:%S")
        if change.op is InputOp.SET:
            print(f"{stamp}  SET     {change.key} = {render.show_value(change.value)}", flush=True)
        elif change.op is InputOp.DELETE:
            print(f"{stamp}  DELETE  {change.key}", flush=True)
        else:
            print(f"{stamp}  ?       {change.key}", flush=True)
    print("the sidecar ended the stream", file=sys.stderr)
    return 1


async def _members(client: StateClient, args: argparse.Namespace) -> int:
    if args.follow:
        async for change in client.membership_changes():
            if args.json:
                print(render.membership_json(change), flush=True)
            else:
                what = "joined" if change.joined else "left"
                print(f"{time.strftime('%H:%M:%S')}  {change.id} {what}", flush=True)
        return 1
    try:
        info = await client.status(deadline=args.timeout)
    except grpc.aio.AioRpcError as exc:
        if exc.code() is not grpc.StatusCode.UNIMPLEMENTED:
            raise
        info = await _members_from_stream(client)
    if args.json:
        print(render.members_json(info))
    else:
        print(render.members_text(info))
    return 0


async def _members_from_stream(client: StateClient) -> StatusInfo:
    """For sidecars without the admin service: the initial members of the membership stream.

    The stream sends the current members at once and then waits for changes; the members
    are taken as complete when nothing more arrives for a short while.
    """
    members: dict[str, MemberInfo] = {}
    stream = client.membership_changes()
    try:
        while True:
            try:
                async with asyncio.timeout(0.5):
                    change = await anext(stream)
            except (TimeoutError, StopAsyncIteration):
                break
            if change.joined:
                members[change.id] = MemberInfo(change.id)
            else:
                members.pop(change.id, None)
    finally:
        with contextlib.suppress(Exception):
            await stream.aclose()
    return StatusInfo(id="", members=tuple(members.values()))


async def _status(client: StateClient, args: argparse.Namespace) -> int:
    info = await client.status(deadline=args.timeout)
    print(render.status_json(info) if args.json else render.status_text(info))
    return 0
