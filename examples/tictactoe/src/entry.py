"""Tic-tac-toe: a turn-based, event-driven shard (it ticks only when a move arrives).

Connect a websocket to ``/?shard=<game>&sid=<you>`` with a token from
``shardsim token <you>`` (see README.md); every subscriber gets the board
at once, then a frame after each move. A move is::

    {"input": {"move": [row, col]}, "client_seq": 1}

with ``row`` and ``col`` in 0..2. Seats are taken by playing: the first
player to move plays X, the next different player to move plays O, and
everyone else watches. ``authorize_input`` refuses by raising, and the mover
alone gets an error text frame with the message raised (nothing changes):
``shards.InvalidInput`` (code ``invalid``) for an input that is not a move,
``shards.Unauthorized`` (code ``unauthorized``) for a move out of turn, from
a spectator, onto a taken cell, or after the end. A line of three
wins; a full board is a draw; either finishes the shard, which closes every
subscriber with 1000 after the final frame.
"""

from __future__ import annotations

from typing import Any

from workers import Response, WorkerEntrypoint

from runtime.shard_objects import ShardObject
from shards import InvalidInput, ShardAuth, ShardConfig, SimState, Unauthorized

#: The cells of each winning line (cell = 3 * row + col).
LINES = ((0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8), (0, 4, 8), (2, 4, 6))


def parse_move(input: Any) -> tuple[int, int]:
    """The ``(row, col)`` of a ``{"move": [row, col]}`` input.

    Raises:
        InvalidInput: the input is not a move; the message says what is expected.
    """
    if not isinstance(input, dict):
        raise InvalidInput(f'expected {{"move": [row, col]}}, got {input!r}')
    extra = sorted(map(repr, set(input) - {"move"}))
    if extra:
        raise InvalidInput(f'unknown key(s) {", ".join(extra)}; expected {{"move": [row, col]}}')
    if "move" not in input:
        raise InvalidInput("missing key 'move'")
    move = input["move"]
    if not isinstance(move, list) or len(move) != 2:
        raise InvalidInput(f"move must be a list of two integers [row, col], got {move!r}")
    for name, c in zip(("row", "col"), move, strict=True):
        # bool is an int; true as a coordinate is a client bug.
        if type(c) is not int or not 0 <= c <= 2:
            raise InvalidInput(f"{name} must be an integer in [0, 2], got {c!r}")
    return move[0], move[1]


class TicTacToeState(SimState):
    """The board, who sits where, whose turn it is, and the result."""

    def __init__(self) -> None:
        #: Cells in row-major order: "X", "O" or "" (empty).
        self.board: list[str] = [""] * 9
        #: Who plays X and O (None: the seat is free).
        self.seats: dict[str, str | None] = {"X": None, "O": None}
        self.turn = "X"
        #: "X", "O", "draw", or None while the game goes on.
        self.winner: str | None = None
        #: The winning line's cells.
        self.line: list[int] = []
        self.moves = 0

    def _check_move(self, player: str, input: Any) -> int:
        """The cell (``3 * row + col``) ``player`` may mark now with ``input``.

        Raises:
            InvalidInput: the input is not a move.
            Unauthorized: the move is not allowed now; the message says why.
        """
        row, col = parse_move(input)
        if self.winner is not None:
            result = "a draw" if self.winner == "draw" else f"{self.winner} won"
            raise Unauthorized(f"the game is over ({result})")
        seat = next((mark for mark, who in self.seats.items() if who == player), None)
        if seat is None and self.seats[self.turn] is not None:
            # Not seated, and the seat whose turn it is has its player: both are taken.
            x, o = self.seats["X"], self.seats["O"]
            raise Unauthorized(f"both seats are taken ({x!r} plays X, {o!r} plays O): spectators cannot move")
        if seat is not None and seat != self.turn:
            raise Unauthorized(f"it is {self.turn}'s turn")
        cell = 3 * row + col
        if self.board[cell]:
            raise Unauthorized(f"cell ({row}, {col}) is taken")
        return cell

    def authorize_input(self, subscriber_id: str, auth: ShardAuth, input: Any) -> bool:
        """A move is accepted when it is legal on the board as it stands (see :meth:`_check_move`)."""
        self._check_move(subscriber_id, input)
        return True

    def apply_input(self, subscriber_id: str, input: Any, now: float) -> None:
        # Moves queued for the same tick were each checked against the board
        # before the first was applied: check again, and drop any that is no
        # longer legal (a hook must not raise).
        try:
            cell = self._check_move(subscriber_id, input)
        except (InvalidInput, Unauthorized):
            return
        mark = self.turn
        self.seats[mark] = subscriber_id
        self.board[cell] = mark
        self.moves += 1
        for line in LINES:
            if all(self.board[c] == mark for c in line):
                self.winner = mark
                self.line = list(line)
                return
        if self.moves == 9:
            self.winner = "draw"
            return
        self.turn = "O" if mark == "X" else "X"

    def tick(self, dt: float) -> None:
        pass  # nothing happens between moves

    def is_finished(self) -> bool:
        return self.winner is not None

    def snapshot(self) -> Any:
        return {
            "board": [self.board[r * 3 : r * 3 + 3] for r in range(3)],
            "players": dict(self.seats),
            "turn": None if self.winner is not None else self.turn,
            "winner": self.winner,
            "line": [[c // 3, c % 3] for c in self.line],
            "moves": self.moves,
        }


class TicTacToe(ShardObject):
    """The Durable Object: one game per shard id, ticking once per move."""

    sim = TicTacToeState
    # Every move is stored before its frame goes out: a game survives anything.
    config = ShardConfig(tick_rate_hz=0, max_subscribers=16, max_input_bytes=256, persist_every_ticks=1)


HELP = """\
tictactoe: a turn-based game, one tick per move

connect a websocket to /?shard=<game>&sid=<you>
  with a token from `shardsim token <you>` (Authorization: Bearer <token>,
  or the subprotocol bearer.<urlencoded token>)
send   {"input": {"move": [row, col]}, "client_seq": 1}   row, col in 0..2
       the first player to move plays X, the next one O; others watch
get    binary frames: 8-byte big-endian tick + JSON {"board", "players", "turn", "winner", "line", "moves"}
       text frames: {"ack": ...} and {"error": ...}
"""


class Default(WorkerEntrypoint):
    async def fetch(self, request: Any) -> Response:
        return Response(HELP, headers={"content-type": "text/plain; charset=utf-8"})
