"""An arena: players steer avatars in real time (20 Hz); each sees only who is near.

Connect a websocket to ``/?shard=<arena>&sid=<you>`` with a token from
``shardsim token <you>`` (see README.md). Subscribing joins the arena: your
avatar spawns at a point derived from your id and stays in the arena when you
leave, so reconnecting picks it up where it was. Inputs steer::

    {"input": {"move": [dx, dy]}, "client_seq": 1}

``dx`` and ``dy`` are numbers in [-1, 1] (a longer vector is scaled down to
length 1); the avatar then moves at ``SPEED`` times that vector until the next
steer, ``[0, 0]`` stops it, and the walls stop it at the arena's edge.
``authorize_input`` refuses anything else by raising ``shards.InvalidInput``
with what was expected: the sender gets an error frame with code ``invalid``
and that message, and nothing changes.

Every tick you get your own avatar (``you``) and the avatars within
``VIEW_RADIUS`` of it (``near``, boundary included): the area of interest,
answered by a ``shards.GridIndex``.

The simulation reads no clock: time is the ``dt`` the shard gives ``tick``.
"""

from __future__ import annotations

import math
import zlib
from typing import Any, Self

from workers import Response, WorkerEntrypoint

from runtime.shard_objects import ShardObject
from shards import GridIndex, InvalidInput, ShardAuth, ShardConfig, SimState, Unauthorized

#: The arena is SIZE x SIZE units; the walls are at 0 and SIZE.
SIZE = 100.0
#: Units per second at full steer.
SPEED = 10.0
#: A player sees the avatars at most this far from theirs.
VIEW_RADIUS = 25.0
#: Avatars in the arena at most (they stay after their player leaves).
MAX_PLAYERS = 64


def spawn_point(player: str) -> tuple[float, float]:
    """Where ``player``'s avatar appears: a point in [10, 90] x [10, 90] that depends only on the id."""
    h = zlib.crc32(player.encode("utf-8"))
    return 10.0 + h % 81, 10.0 + (h // 81) % 81


def steer(input: Any) -> tuple[float, float]:
    """The steering vector of a ``{"move": [dx, dy]}`` input.

    Raises:
        InvalidInput: the input is not a steer; the message says what is expected.
    """
    if not isinstance(input, dict):
        raise InvalidInput(f'expected {{"move": [dx, dy]}}, got {input!r}')
    extra = sorted(map(repr, set(input) - {"move"}))
    if extra:
        raise InvalidInput(f'unknown key(s) {", ".join(extra)}; expected {{"move": [dx, dy]}}')
    if "move" not in input:
        raise InvalidInput("missing key 'move'")
    move = input["move"]
    if not isinstance(move, list) or len(move) != 2:
        raise InvalidInput(f"move must be a list of two numbers [dx, dy], got {move!r}")
    for name, c in zip(("dx", "dy"), move, strict=True):
        # bool is an int; true as a coordinate is a client bug, not a direction.
        if isinstance(c, bool) or not isinstance(c, int | float) or not -1 <= c <= 1:
            raise InvalidInput(f"{name} must be a number in [-1, 1], got {c!r}")
    dx, dy = float(move[0]), float(move[1])
    length = math.hypot(dx, dy)
    if length > 1:
        dx, dy = dx / length, dy / length
    return dx, dy


class ArenaState(SimState):
    """The avatars (position and velocity) and the arena's clock, with a grid index for the views."""

    def __init__(self, players: dict[str, dict[str, float]] | None = None, clock: float = 0.0) -> None:
        #: player id -> {"x", "y", "vx", "vy"}, in join order.
        self.players: dict[str, dict[str, float]] = players if players is not None else {}
        #: Seconds of shard time this arena has run.
        self.clock = clock
        # Derived from the positions: not persisted, rebuilt on restore.
        self._index: GridIndex[str] = GridIndex(VIEW_RADIUS)
        for pid, p in self.players.items():
            self._index.insert(pid, (p["x"], p["y"]))

    # -- joining ------------------------------------------------------------------

    def authorize_subscribe(self, subscriber_id: str, auth: ShardAuth) -> bool:
        """Players subscribe as themselves (admins as anyone); subscribing joins the arena.

        This is the only hook that runs when a subscriber arrives, so the join
        happens here. It is idempotent (a returning player keeps their avatar),
        and a refused subscription changes nothing: a newcomer to a full arena
        is closed with 1008 and the reason raised here.
        """
        if not super().authorize_subscribe(subscriber_id, auth):
            return False
        if subscriber_id not in self.players and len(self.players) >= MAX_PLAYERS:
            raise Unauthorized(f"the arena is full ({MAX_PLAYERS} avatars)")
        self._join(subscriber_id)
        return True

    def _join(self, player: str) -> dict[str, float]:
        p = self.players.get(player)
        if p is None:
            x, y = spawn_point(player)
            p = self.players[player] = {"x": x, "y": y, "vx": 0.0, "vy": 0.0}
            self._index.insert(player, (x, y))
        return p

    # -- inputs -------------------------------------------------------------------

    def authorize_input(self, subscriber_id: str, auth: ShardAuth, input: Any) -> bool:
        """Only steering inputs are accepted; :func:`steer` raises InvalidInput for anything else."""
        steer(input)
        return True

    def apply_input(self, subscriber_id: str, input: Any, now: float) -> None:
        try:
            direction = steer(input)
        except InvalidInput:
            return  # never queued by a client (authorize_input refused it); a hook must not raise
        # A player whose join predates no record (the object woke from an older
        # one) spawns now: steering always has an avatar to steer.
        p = self._join(subscriber_id)
        p["vx"], p["vy"] = direction[0] * SPEED, direction[1] * SPEED

    # -- time ---------------------------------------------------------------------

    def tick(self, dt: float) -> None:
        self.clock += dt
        for pid, p in self.players.items():
            if p["vx"] or p["vy"]:
                p["x"] = min(SIZE, max(0.0, p["x"] + p["vx"] * dt))
                p["y"] = min(SIZE, max(0.0, p["y"] + p["vy"] * dt))
                self._index.move(pid, (p["x"], p["y"]))

    # -- views --------------------------------------------------------------------

    def _view(self, player: str) -> dict[str, Any]:
        p = self.players[player]
        return {
            "id": player,
            "x": round(p["x"], 3),
            "y": round(p["y"], 3),
            "vx": round(p["vx"], 3),
            "vy": round(p["vy"], 3),
        }

    def snapshot(self) -> Any:
        """The whole arena (what an observer of everything would see)."""
        return {
            "players": [self._view(pid) for pid in sorted(self.players)],
            "time": round(self.clock, 3),
        }

    def snapshot_for(self, subscriber_id: str) -> Any:
        """Your avatar and the avatars within ``VIEW_RADIUS`` of it, sorted by id."""
        me = self.players.get(subscriber_id)
        near: list[dict[str, Any]] = []
        if me is not None:
            seen = self._index.query_radius((me["x"], me["y"]), VIEW_RADIUS)
            near = [self._view(pid) for pid in seen if pid != subscriber_id]
        return {
            "you": self._view(subscriber_id) if me is not None else None,
            "near": near,
            "players": len(self.players),
            "time": round(self.clock, 3),
        }

    # -- persistence --------------------------------------------------------------

    def to_state(self) -> Any:
        return {"players": {pid: dict(p) for pid, p in self.players.items()}, "clock": self.clock}

    @classmethod
    def from_state(cls, value: Any) -> Self:
        return cls(players={pid: dict(p) for pid, p in value["players"].items()}, clock=value["clock"])


class Arena(ShardObject):
    """The Durable Object: one arena per shard id, ticking at 20 Hz on the runtime's timer."""

    sim = ArenaState
    config = ShardConfig(
        tick_rate_hz=20,
        max_subscribers=MAX_PLAYERS,
        max_input_bytes=1024,
        # A record every second, and whenever the arena goes quiet (nobody connected).
        persist_every_ticks=20,
    )
    tick_strategy = "timer"


HELP = """\
arena: real-time movement at 20 Hz with area-of-interest views

connect a websocket to /?shard=<arena>&sid=<you>
  with a token from `shardsim token <you>` (Authorization: Bearer <token>,
  or the subprotocol bearer.<urlencoded token>)
send   {"input": {"move": [dx, dy]}, "client_seq": 1}   dx, dy in [-1, 1]
get    binary frames: 8-byte big-endian tick + JSON {"you", "near", "players", "time"}
       text frames: {"ack": ...} and {"error": ...}
"""


class Default(WorkerEntrypoint):
    async def fetch(self, request: Any) -> Response:
        return Response(HELP, headers={"content-type": "text/plain; charset=utf-8"})
