"""Shards hosted in Durable Objects, and the pylon wire protocol their subscribers speak.

A module-level class per shard kind (a Wrangler config names it by ``class_name``)::

    from runtime.shard_objects import ShardObject
    from shards import ShardConfig

    class Arena(ShardObject):
        sim = ArenaState                              # your SimState subclass
        config = ShardConfig(tick_rate_hz=20)         # 0: event-driven
        tick_strategy = "timer"                       # or "alarm"
        persist_every_ticks = 100

Subscribers connect with ``ws://host:port/?shard=<id>&sid=<subscriber>`` and a
token from ``shardsim token <user>``; the dev server (or a Worker) hands each
upgrade to :func:`handle_shard_upgrade`.

See :mod:`runtime.shard_objects._object` (how a shard object runs),
:mod:`~runtime.shard_objects._protocol` (the wire protocol),
:mod:`~runtime.shard_objects._upgrade` (the endpoint's contract),
:mod:`~runtime.shard_objects._tokens` (bearer tokens) and
:mod:`~runtime.shard_objects._backpressure` (slow subscribers).
"""

from __future__ import annotations

from shards._errors import (
    InvalidToken as InvalidToken,
    ProtocolError as ProtocolError,
    TokenExpired as TokenExpired,
)

from ._backpressure import BackpressurePolicy as BackpressurePolicy
from ._object import (
    STATE_KEY as STATE_KEY,
    ShardObject as ShardObject,
    ShardObjectStatistics as ShardObjectStatistics,
    TickStrategy as TickStrategy,
)
from ._protocol import (
    CLOSE_FINISHED as CLOSE_FINISHED,
    CLOSE_FULL as CLOSE_FULL,
    CLOSE_INTERNAL as CLOSE_INTERNAL,
    CLOSE_REFUSED as CLOSE_REFUSED,
    CLOSE_REPLACED as CLOSE_REPLACED,
    CLOSE_TOO_SLOW as CLOSE_TOO_SLOW,
    ERROR_CODES as ERROR_CODES,
    Inbound as Inbound,
    SubscribeParams as SubscribeParams,
    ack_message as ack_message,
    bearer_token as bearer_token,
    error_message as error_message,
    parse_inbound as parse_inbound,
    parse_subscribe_query as parse_subscribe_query,
)
from ._tokens import (
    SECRET_ENV as SECRET_ENV,
    SECRET_FILE as SECRET_FILE,
    HmacTokenResolver as HmacTokenResolver,
    TokenResolver as TokenResolver,
    ensure_secret_file as ensure_secret_file,
    load_secret as load_secret,
    make_token as make_token,
    read_dev_vars as read_dev_vars,
    verify_token as verify_token,
)
from ._upgrade import closed_upgrade as closed_upgrade, handle_shard_upgrade as handle_shard_upgrade

__all__ = [
    "CLOSE_FINISHED",
    "CLOSE_FULL",
    "CLOSE_INTERNAL",
    "CLOSE_REFUSED",
    "CLOSE_REPLACED",
    "CLOSE_TOO_SLOW",
    "ERROR_CODES",
    "SECRET_ENV",
    "SECRET_FILE",
    "STATE_KEY",
    "BackpressurePolicy",
    "HmacTokenResolver",
    "Inbound",
    "InvalidToken",
    "ProtocolError",
    "ShardObject",
    "ShardObjectStatistics",
    "SubscribeParams",
    "TickStrategy",
    "TokenExpired",
    "TokenResolver",
    "ack_message",
    "bearer_token",
    "closed_upgrade",
    "error_message",
    "ensure_secret_file",
    "handle_shard_upgrade",
    "load_secret",
    "make_token",
    "parse_inbound",
    "parse_subscribe_query",
    "read_dev_vars",
    "verify_token",
]
