"""SQL text rules shared by Durable Object SQL (``runtime.storage``) and D1 (``runtime.d1``).

This module owns the two things both SQL APIs must agree on, so that they
cannot drift apart: how a string of SQL splits into statements
(:func:`split_statements`, with :func:`skip_trivia` for the whitespace and
comments around them), and which PRAGMAs user SQL may run
(:class:`PragmaRules`, with one table per product: :data:`DURABLE_OBJECT_PRAGMAS`
and :data:`D1_PRAGMAS`). The authorizers that apply the PRAGMA rules, the
errors each product raises and everything that touches a database stay with
each product.

Invariants:

* Pure text work: nothing here opens a database or does I/O.
  ``sqlite3.complete_statement`` is SQLite's tokenizer alone.
* Layering: this module sits below both ``runtime.storage`` and
  ``runtime.d1``; it imports the standard library only, so either may use it
  without reaching the other.
* A ``;`` ends a statement only where SQLite's tokenizer agrees (not inside
  a string, a quoted name, a comment or a trigger body). Every statement
  returned is a slice of the input, in input order, with the whitespace and
  comments before it and its ``;`` (the last may lack one); the input is
  those slices plus the empty statements and trailing whitespace dropped
  between them.
* The two splitting modes find the same statements and differ only on an
  *empty* one (``;;``, a comment alone, no text at all): the lenient mode
  (D1, like SQLite's own prepare loop) drops it; the strict mode (Durable
  Object SQL, as workerd's ``sql.exec``) refuses the whole text with
  :class:`EmptyStatementError`. Whitespace after the last statement is never
  a statement in either mode.
* "Whitespace" is what ``str.isspace`` says, in :func:`skip_trivia` and in
  the splitter alike, so the two never disagree on where a statement starts.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from typing import Final

__all__ = [
    "D1_PRAGMAS",
    "DURABLE_OBJECT_PRAGMAS",
    "EmptyStatementError",
    "PragmaRules",
    "is_blank",
    "reserved_name",
    "skip_trivia",
    "split_statements",
]

# Whitespace, ``--`` comments (to the end of the line) and ``/* */`` comments (an
# unclosed one runs to the end of the text, as SQLite reads it). ``\s`` on a str
# is exactly ``str.isspace``.
_TRIVIA: Final = re.compile(r"(?:\s+|--[^\n]*\n?|/\*.*?(?:\*/|\Z))*", re.S)


class EmptyStatementError(ValueError):
    """The text holds no statement, or an empty one (raised by the strict mode only).

    Each product turns it into its own error, worded as production words it.
    """


def skip_trivia(text: str, pos: int = 0) -> int:
    """The index of the first character at or after ``pos`` that is not whitespace or a comment.

    ``len(text)`` when there is none.
    """
    return _TRIVIA.match(text, pos).end()  # type: ignore[union-attr]  # the pattern matches ""


def is_blank(text: str) -> bool:
    """Whether ``text`` holds nothing but whitespace and comments."""
    return _TRIVIA.match(text).end() == len(text)  # type: ignore[union-attr]  # the pattern matches ""


def split_statements(sql: str, *, strict: bool = False) -> list[str]:
    """Split SQL text into its statements, as SQLite's tokenizer sees them.

    Semicolons inside strings, quoted names, comments and trigger bodies do
    not split. A trailing statement without ``;`` is kept (SQLite reports it
    if it is incomplete); whitespace after the last statement is dropped.

    Args:
        sql: the text.
        strict: what to do with an empty statement (``;;``, a comment alone,
            a comment after the last ``;``) and with text that holds no
            statement at all. False drops them, so the result may be empty
            (D1's rule); True refuses them (Durable Object SQL's rule).

    Raises:
        EmptyStatementError: ``strict`` and the text holds an empty statement
            or none.
    """
    statements: list[str] = []
    start = 0
    pos = sql.find(";")
    while pos != -1:
        piece = sql[start : pos + 1]
        # complete_statement is SQLite's own tokenizer (pure, no database): it knows
        # quotes, comments and CREATE TRIGGER ... BEGIN ...; END; bodies.
        if sqlite3.complete_statement(piece):
            if not is_blank(piece[:-1]):
                statements.append(piece)
            elif strict:
                raise EmptyStatementError(f"empty statement: {piece!r}")
            start = pos + 1
        pos = sql.find(";", pos + 1)
    tail = sql[start:]
    if not is_blank(tail):
        statements.append(tail)
    elif strict and tail.strip():
        # Comments after the last statement are an empty statement to workerd; plain
        # whitespace is not.
        raise EmptyStatementError(f"empty statement: {tail!r}")
    if strict and not statements:
        raise EmptyStatementError("no statement")
    return statements


# --- PRAGMAs ----------------------------------------------------------------------------------------

_BOOLEAN_WORDS: Final = frozenset({"true", "false", "on", "off", "yes", "no", "1", "0"})


def reserved_name(name: str | None) -> bool:
    """Whether ``name`` is in the runtime's reserved ``_cf_`` namespace (any case).

    SQLite names are case-insensitive, so ``_CF_KV`` names the same table as ``_cf_KV``.
    """
    return name is not None and name[:4].lower() == "_cf_"


@dataclass(frozen=True, slots=True, kw_only=True)
class PragmaRules:
    """Which PRAGMAs user SQL may run, and with what argument: one product's allow-list.

    A PRAGMA in none of the three sets is refused. The sets are disjoint.

    Attributes:
        reads: allowed only without an argument (``PRAGMA page_count``).
        named: allowed with any argument or none: they take a table or index
            name, or a count (``PRAGMA table_info(t)``).
        settings: allowed to be read, or set (``PRAGMA defer_foreign_keys = ON``).
        refuse_reserved_names: a ``named`` PRAGMA's argument may not be a
            ``_cf_`` name (:func:`reserved_name`).
        boolean_settings: a ``settings`` PRAGMA may be set only to a boolean
            word (``on``, ``off``, ``true``, ``false``, ``yes``, ``no``, ``1``,
            ``0``; quoted or not, any case).
    """

    reads: frozenset[str]
    named: frozenset[str]
    settings: frozenset[str]
    refuse_reserved_names: bool
    boolean_settings: bool

    def __post_init__(self) -> None:
        if self.reads & self.named or self.reads & self.settings or self.named & self.settings:
            raise ValueError("a PRAGMA may be in only one of reads, named and settings")

    def allows(self, name: str | None, argument: str | None) -> bool:
        """Whether ``PRAGMA name`` / ``PRAGMA name(argument)`` / ``PRAGMA name = argument`` may run.

        ``name`` and ``argument`` are what SQLite hands the authorizer for
        ``SQLITE_PRAGMA`` (the argument is the text after ``=`` or inside the
        parentheses, or None).
        """
        pragma = (name or "").lower()
        if pragma in self.named:
            return not (self.refuse_reserved_names and reserved_name(argument))
        if pragma in self.settings:
            return (
                argument is None
                or not self.boolean_settings
                or argument.strip().strip("'\"").lower() in _BOOLEAN_WORDS
            )
        return argument is None and pragma in self.reads


#: Durable Object SQL, as workerd's authorizer allows it: schema introspection (never of
#: the runtime's ``_cf_`` tables), a few behaviour switches that take a boolean, and
#: ``data_version``.
DURABLE_OBJECT_PRAGMAS: Final = PragmaRules(
    reads=frozenset({"data_version"}),
    named=frozenset(
        {
            "table_info",
            "table_xinfo",
            "table_list",
            "index_list",
            "index_info",
            "index_xinfo",
            "foreign_key_list",
            "foreign_key_check",
            "quick_check",
        }
    ),
    settings=frozenset(
        {
            "defer_foreign_keys",
            "foreign_keys",
            "case_sensitive_like",
            "ignore_check_constraints",
            "legacy_alter_table",
            "recursive_triggers",
            "reverse_unordered_selects",
        }
    ),
    refuse_reserved_names=True,
    boolean_settings=True,
)

#: D1, as its documentation lists the PRAGMAs it supports. Foreign keys are always on in
#: D1: ``foreign_keys`` may only be read, and only their deferral may change.
D1_PRAGMAS: Final = PragmaRules(
    reads=frozenset({"foreign_keys", "page_count", "page_size", "data_version", "freelist_count"}),
    named=frozenset(
        {
            "table_list",
            "table_info",
            "table_xinfo",
            "index_list",
            "index_info",
            "index_xinfo",
            "foreign_key_list",
            "foreign_key_check",
            "quick_check",
            "integrity_check",
            "optimize",
        }
    ),
    settings=frozenset(
        {
            "defer_foreign_keys",
            "case_sensitive_like",
            "ignore_check_constraints",
            "legacy_alter_table",
            "recursive_triggers",
            "reverse_unordered_selects",
        }
    ),
    refuse_reserved_names=False,
    boolean_settings=False,
)
