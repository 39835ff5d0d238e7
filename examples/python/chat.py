#!/usr/bin/env python3
"""A terminal chat over rtm2.

    python examples/python/chat.py                      # embedded server, with an echo bot
    python examples/python/chat.py --endpoint 127.0.0.1:9696 --user alice   # an `rtm2 serve`

Type a line to send it to the channel, `/dm USER TEXT` for a direct message, `/quit` (or
Ctrl-D) to leave. Install the package first: `pip install ./bindings/python`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import threading
from typing import Optional

import rtm2

DEFAULT_APP_ID = "0123456789abcdef0123456789abcdef"


def show(ev: rtm2.MessageEvent) -> None:
    text = ev.message if isinstance(ev.message, str) else f"<{len(ev.message)} bytes>"
    where = "dm" if ev.channel_type == "USER" else ev.channel
    print(f"[{where}] {ev.publisher}: {text}", flush=True)


async def echo_bot(app_id: str, endpoint: Optional[str], channel: str, ready: asyncio.Event) -> None:
    """A second user that answers every message (so the embedded server has someone to talk to)."""
    async with rtm2.Client(app_id, "echo-bot", endpoint) as bot:

        @bot.on("message")
        async def reply(ev: rtm2.MessageEvent) -> None:
            if ev.publisher == bot.user_id:
                return
            if ev.channel_type == "USER":
                await bot.publish(ev.publisher, f"you said {ev.message!r}", channel_type="USER")
            else:
                await bot.publish(channel, f"echo: {ev.message}")

        await bot.login()
        await bot.subscribe(channel)
        ready.set()
        await asyncio.Event().wait()  # until cancelled


def read_lines(loop: asyncio.AbstractEventLoop, queue: "asyncio.Queue[Optional[str]]") -> None:
    """Reads stdin on a daemon thread (a blocked read must not keep the program alive)."""
    while True:
        line = sys.stdin.readline()
        try:
            loop.call_soon_threadsafe(queue.put_nowait, line.rstrip("\n") if line else None)
        except RuntimeError:  # the loop is closed: we are leaving
            return
        if not line:
            return


async def chat(args: argparse.Namespace) -> int:
    embedded = args.endpoint in (None, "", "embedded")
    bot_task = None
    if args.bot or (embedded and not args.no_bot):
        ready = asyncio.Event()
        bot_task = asyncio.create_task(echo_bot(args.app_id, args.endpoint, args.channel, ready))
        await asyncio.wait_for(ready.wait(), 10)

    async with rtm2.Client(args.app_id, args.user, args.endpoint) as client:
        client.on("message", show)

        @client.on("link_state")
        def link(ev: rtm2.LinkStateEvent) -> None:
            if ev.service_type == "MESSAGE" and ev.current != "CONNECTING":
                print(f"* {ev.current.lower()} ({ev.reason})", file=sys.stderr, flush=True)

        try:
            await client.login(args.token)
            await client.subscribe(args.channel)
        except rtm2.RtmError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        where = "the embedded server" if embedded else args.endpoint
        print(f"* {args.user} in #{args.channel} on {where}; /dm USER TEXT, /quit", flush=True)

        lines: "asyncio.Queue[Optional[str]]" = asyncio.Queue()
        threading.Thread(target=read_lines, args=(asyncio.get_running_loop(), lines), daemon=True).start()
        while True:
            line = await lines.get()
            if line is None or line.strip() == "/quit":
                break
            if not line.strip():
                continue
            try:
                if line.startswith("/dm "):
                    _, user, text = (line.split(" ", 2) + [""])[:3]
                    await client.publish(user, text, channel_type="USER")
                else:
                    await client.publish(args.channel, line)
            except rtm2.RtmError as e:  # e.g. 11033: the user is offline
                print(f"* not sent: {e.name} ({int(e.code)}): {e.reason}", flush=True)

    if bot_task:
        bot_task.cancel()
        await asyncio.gather(bot_task, return_exceptions=True)
    print("* bye", flush=True)
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--endpoint", help="HOST:PORT of an `rtm2 serve` (default: the embedded server)")
    p.add_argument("--app-id", default=DEFAULT_APP_ID)
    p.add_argument("--user", default="me")
    p.add_argument("--channel", default="lobby")
    p.add_argument("--token", default="", help="RTM token (servers with an app certificate)")
    p.add_argument("--bot", action="store_true", help="start the echo bot with a remote endpoint too")
    p.add_argument("--no-bot", action="store_true", help="no echo bot with the embedded server")
    p.add_argument("--log-level", default="WARNING", help="Python logging level for the SDK's logs")
    args = p.parse_args()
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        return asyncio.run(chat(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
