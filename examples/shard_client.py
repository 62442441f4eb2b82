"""A minimal client for any shard the dev server hosts.

    python examples/shard_client.py ws://127.0.0.1:8787 <shard id> <sid> --token TOKEN \\
        [--input JSON ...] [--frames N]

It connects to ``<server>/?shard=<shard id>&sid=<sid>`` with the token in a
``bearer.<urlencoded token>`` subprotocol (what a browser would do: it cannot
set an Authorization header on a websocket), sends each ``--input`` as
``{"input": <JSON>, "client_seq": 1, 2, ...}``, then prints what arrives:
binary frames (8-byte big-endian tick + JSON snapshot) as
``tick <n>: <snapshot>``, text frames (acks and errors) as they are. It stops
after ``--frames`` frames, or when the server closes the connection, printing
``closed <code> <reason>``. The exit status is 1 when the server closed with
anything but 1000 (a refused token closes with 1008, a full shard with 1013).
"""

from __future__ import annotations

import argparse
import json
import urllib.parse

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect
from websockets.typing import Subprotocol

from shards import decode_frame


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Subscribe to a shard and print its frames.")
    parser.add_argument("server", help="the dev server, e.g. ws://127.0.0.1:8787")
    parser.add_argument("shard", help="shard id (created on first connect)")
    parser.add_argument("sid", help="subscriber id (your user id, unless the token is --admin)")
    parser.add_argument("--token", default="", help="from `shardsim token <user>`")
    parser.add_argument(
        "--input", action="append", default=[], type=json.loads, metavar="JSON", help="an input to send"
    )
    parser.add_argument("--frames", type=int, default=None, help="stop after N frames")
    args = parser.parse_args(argv)

    query = urllib.parse.urlencode({"shard": args.shard, "sid": args.sid})
    url = f"{args.server.rstrip('/')}/?{query}"
    protocols = [Subprotocol("bearer." + urllib.parse.quote(args.token, safe=""))] if args.token else None
    with connect(url, subprotocols=protocols) as ws:
        try:
            for seq, value in enumerate(args.input, start=1):
                ws.send(json.dumps({"input": value, "client_seq": seq}))
            frames = 0
            while args.frames is None or frames < args.frames:
                message = ws.recv()
                if isinstance(message, bytes):
                    tick, snapshot = decode_frame(message, "json")
                    print(f"tick {tick}: {json.dumps(snapshot)}", flush=True)
                    frames += 1
                else:
                    print(message, flush=True)  # {"ack": ...} or {"error": ...}
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else 1006  # 1006: no close frame at all
            reason = closed.rcvd.reason if closed.rcvd else ""
            print(f"closed {code} {reason}".rstrip(), flush=True)
            return 0 if code == 1000 else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
