"""An auction lot: bids as inputs, a deadline in shard time, the shard persisted every tick.

Connect a websocket to ``/?shard=<lot>&sid=<you>`` with a token from
``shardsim token <you>`` (see README.md). The lot (named by the shard id)
waits until an admin opens it, then takes bids until its deadline::

    {"input": {"open": {"start": 10, "seconds": 60}}}     admin only (shardsim token <who> --admin)
    {"input": {"bid": 12}, "client_seq": 1}               an integer above the current price

``authorize_input`` refuses by raising, and the sender alone gets an error
text frame with the message raised (nothing changes): ``shards.InvalidInput``
(code ``invalid``) for an input that is neither, or whose values are out of
range; ``shards.Unauthorized`` (code ``unauthorized``) for a well-formed one
the lot does not allow now: a bid not above the current price, a bid while
the lot is not open, an ``open`` from a non-admin or on a lot already
opened. Once ``seconds`` of shard time have passed since the opening, the
lot is sold to the highest bidder (or unsold without bids) and the shard
finishes: subscribers get the final frame and a 1000 close, and a late
viewer gets the final state.

The shard ticks at 10 Hz on alarms and stores its record on every tick, so
nothing a subscriber has seen is ever lost, whatever happens to the object.
Shard time stands still while nobody is connected (the shard stops ticking
when quiet), so the countdown pauses too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

from workers import Response, WorkerEntrypoint

from runtime.shard_objects import ShardObject
from shards import InvalidInput, ShardAuth, ShardConfig, SimState, Unauthorized

#: Highest price a bid or an opening may name.
MAX_PRICE = 1_000_000_000
#: Longest auction an opening may ask for, in seconds.
MAX_SECONDS = 7 * 24 * 3600
#: Bids shown in the snapshot (the most recent).
HISTORY = 10


def _is_int(value: Any) -> bool:
    return type(value) is int  # bool is an int subclass, and never a price


@dataclass(frozen=True)
class Open:
    """An ``{"open": {"start": price, "seconds": duration}}`` input."""

    start: int
    seconds: float


@dataclass(frozen=True)
class Bid:
    """A ``{"bid": amount}`` input."""

    amount: int


#: What an input may be, for the error messages.
FORMS = '{"bid": amount} or {"open": {"start": price, "seconds": duration}}'


def parse(input: Any) -> Open | Bid:
    """The ``open`` or ``bid`` an input is.

    Raises:
        InvalidInput: it is neither, or a value is out of range; the message says what is expected.
    """
    if not isinstance(input, dict):
        raise InvalidInput(f"expected {FORMS}, got {input!r}")
    extra = sorted(map(repr, set(input) - {"bid", "open"}))
    if extra:
        raise InvalidInput(f"unknown key(s) {', '.join(extra)}; expected {FORMS}")
    if len(input) != 1:
        raise InvalidInput(f"expected {FORMS}, got {input!r}")
    if "bid" in input:
        amount = input["bid"]
        if not _is_int(amount) or not 0 < amount <= MAX_PRICE:
            raise InvalidInput(f"bid must be an integer in [1, {MAX_PRICE}], got {amount!r}")
        return Bid(amount)
    params = input["open"]
    if not isinstance(params, dict) or set(params) != {"start", "seconds"}:
        raise InvalidInput(f'open must be {{"start": price, "seconds": duration}}, got {params!r}')
    start, seconds = params["start"], params["seconds"]
    if not _is_int(start) or not 0 <= start <= MAX_PRICE:
        raise InvalidInput(f"start must be an integer in [0, {MAX_PRICE}], got {start!r}")
    # Not a bool, and neither NaN nor infinite (both fail the range test).
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 < seconds <= MAX_SECONDS:
        raise InvalidInput(f"seconds must be a number in (0, {MAX_SECONDS}], got {seconds!r}")
    return Open(start, float(seconds))


class LotState(SimState):
    """One lot: its status, price and leading bidder, recent bids, and its clock."""

    def __init__(self, item: str) -> None:
        self.item = item
        #: "waiting" (not opened yet), "open", "sold" or "unsold".
        self.status = "waiting"
        self.price = 0
        self.leader: str | None = None
        #: The most recent bids: [{"bidder", "amount", "at"}], oldest first.
        self.bids: list[dict[str, Any]] = []
        #: Seconds of shard time the lot has run (the sum of the ticks' dt).
        self.clock = 0.0
        self.closes_at: float | None = None

    @classmethod
    def create(cls, shard_id: str) -> Self:
        """A new lot, named by its shard id, waiting to be opened."""
        return cls(item=shard_id)

    def _check(self, command: Open | Bid) -> None:
        """Refuse ``command`` when the lot, as it stands, does not allow it.

        Raises:
            Unauthorized: the message says why.
        """
        if isinstance(command, Open):
            if self.status != "waiting":
                raise Unauthorized("the lot was opened already")
            return
        if self.status == "waiting":
            raise Unauthorized("the lot is not open yet")
        if self.status != "open":
            raise Unauthorized(f"the lot is closed ({self.status})")
        if command.amount <= self.price:
            raise Unauthorized(f"bid {command.amount} is not above the current price {self.price}")

    def authorize_input(self, subscriber_id: str, auth: ShardAuth, input: Any) -> bool:
        """An admin may open a waiting lot; anyone may bid above the current price on an open lot."""
        command = parse(input)
        if isinstance(command, Open) and not auth.admin:
            raise Unauthorized("only an admin may open the lot")
        self._check(command)
        return True

    def apply_input(self, subscriber_id: str, input: Any, now: float) -> None:
        # Inputs queued for the same tick were each authorized against the
        # state before the first was applied: check again, and drop one that
        # no longer holds, e.g. a bid no longer above the price (a hook must not raise).
        try:
            command = parse(input)
            self._check(command)
        except (InvalidInput, Unauthorized):
            return
        if isinstance(command, Open):  # authorize_input checked the sender is an admin
            self.status = "open"
            self.price = command.start
            self.closes_at = self.clock + command.seconds
            return
        self.price = command.amount
        self.leader = subscriber_id
        self.bids.append({"bidder": subscriber_id, "amount": command.amount, "at": round(self.clock, 3)})
        del self.bids[:-HISTORY]

    def tick(self, dt: float) -> None:
        self.clock += dt
        if self.status == "open" and self.closes_at is not None and self.clock >= self.closes_at:
            self.status = "sold" if self.leader is not None else "unsold"

    def is_finished(self) -> bool:
        return self.status in ("sold", "unsold")

    def snapshot(self) -> Any:
        remaining = None if self.closes_at is None else round(max(0.0, self.closes_at - self.clock), 3)
        return {
            "item": self.item,
            "status": self.status,
            "price": self.price,
            "leader": self.leader,
            "bids": [dict(b) for b in self.bids],
            "remaining": remaining,
        }


class AuctionLot(ShardObject):
    """The Durable Object: one lot per shard id, a tick per alarm, a record per tick."""

    sim = LotState
    config = ShardConfig(tick_rate_hz=10, max_subscribers=256, max_input_bytes=256, persist_every_ticks=1)
    tick_strategy = "alarm"


HELP = """\
auction: one lot per shard, bids as inputs, a deadline in shard time

connect a websocket to /?shard=<lot>&sid=<you>
  with a token from `shardsim token <you>` (Authorization: Bearer <token>,
  or the subprotocol bearer.<urlencoded token>)
send   {"input": {"open": {"start": 10, "seconds": 60}}}   (an admin token: shardsim token <who> --admin)
       {"input": {"bid": 12}, "client_seq": 1}           an integer above the current price
get    binary frames: 8-byte big-endian tick + JSON {"item", "status", "price", "leader", "bids", "remaining"}
       text frames: {"ack": ...} and {"error": ...}
"""


class Default(WorkerEntrypoint):
    async def fetch(self, request: Any) -> Response:
        return Response(HELP, headers={"content-type": "text/plain; charset=utf-8"})
