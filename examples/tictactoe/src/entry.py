"""Tic-tac-toe: a turn-based, event-driven shard (it ticks only when a move arrives).

Connect a websocket to ``/?shard=<game>&sid=<you>`` with a token from
``shardsim token <you>`` (see README.md); every subscriber gets the board
at once, then a frame after each move. A move is::

    {"input": {"move": [row, col]}, "client_seq": 1}

with ``row`` and ``col`` in 0..2. Seats are taken by playing: the first
player to move plays X, the next different player to move plays O, and
everyone else watches. ``authorize_input`` refuses a move out of turn, from
a spectator, onto a taken cell, after the end, or one that is not a move:
the mover gets an error text frame and nothing changes. A line of three
wins; a full board is a draw; either finishes the shard, which closes every
subscriber with 1000 after the final frame.
"""

from __future__ import annotations

from typing import Any

from workers import Response, WorkerEntrypoint

from runtime.shard_objects import ShardObject
from shards import ShardAuth, ShardConfig, SimState

#: The cells of each winning line (cell = 3 * row + col).
LINES = ((0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8), (0, 4, 8), (2, 4, 6))


def cell_of(input: Any) -> int | None:
    """The cell (0..8) a ``{"move": [row, col]}`` input names, or None when the input is not one."""
    if not isinstance(input, dict) or set(input) != {"move"}:
        return None
    move = input["move"]
    if not isinstance(move, list) or len(move) != 2:
        return None
    row, col = move
    # bool is an int; true as a coordinate is a client bug.
    if any(type(c) is not int or not 0 <= c <= 2 for c in (row, col)):
        return None
    return 3 * row + col


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

    def _legal(self, player: str, input: Any) -> int | None:
        """The cell ``player`` may mark now with ``input``, or None when the move is refused."""
        if self.winner is not None:
            return None
        cell = cell_of(input)
        if cell is None or self.board[cell]:
            return None
        seated = self.seats[self.turn]
        if seated is None:
            # The seat is free: anyone but the other seat's player takes it by moving.
            other = self.seats["O" if self.turn == "X" else "X"]
            return None if player == other else cell
        return cell if player == seated else None

    def authorize_input(self, subscriber_id: str, auth: ShardAuth, input: Any) -> bool:
        """A move is accepted when it is legal on the board as it stands (see :meth:`_legal`)."""
        return self._legal(subscriber_id, input) is not None

    def apply_input(self, subscriber_id: str, input: Any, now: float) -> None:
        # Moves queued for the same tick were each checked against the board
        # before the first was applied: check again, and drop any that is no
        # longer legal (a hook must not raise).
        cell = self._legal(subscriber_id, input)
        if cell is None:
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
