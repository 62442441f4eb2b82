"""Bearer tokens for the shard endpoint: HMAC-signed, and a pluggable resolver.

A token is ``shs1.<payload>.<signature>``: ``payload`` is the base64url
(unpadded) of a compact JSON object ``{"sub": user, "adm": bool, "iat": ms,
"exp": ms | null}``, ``signature`` the base64url HMAC-SHA256 of
``"shs1." + payload`` under the secret. ``shardsim token <user>`` makes one.

Invariants:

* A token is accepted only if its signature matches under the secret
  (compared in constant time), its fields have exactly the types above, and
  it has not expired. Anything else raises :class:`~shards.InvalidToken`
  (or :class:`~shards.TokenExpired`) with a ``reason``; there is no fallback
  that takes a bare user id.
* Nothing here reads a clock: callers pass ``now_ms`` (the runtime's
  :func:`~runtime.now_ms` on the server, wall time in the CLI).

Secrets, in the order :func:`load_secret` looks: the ``SHARDSIM_SECRET``
environment variable, ``SHARDSIM_SECRET`` in the project's ``.dev.vars``, the
dev server's ``.shardsim/secret`` file (created by the dev server with
:func:`ensure_secret_file`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final, Protocol

from shards import ShardAuth
from shards._errors import InvalidToken, TokenExpired

__all__ = [
    "SECRET_ENV",
    "SECRET_FILE",
    "TOKEN_PREFIX",
    "HmacTokenResolver",
    "TokenResolver",
    "ensure_secret_file",
    "load_secret",
    "make_token",
    "read_dev_vars",
    "verify_token",
]

TOKEN_PREFIX: Final = "shs1"
#: The variable holding the signing secret (environment or ``.dev.vars``).
SECRET_ENV: Final = "SHARDSIM_SECRET"
#: The dev server's secret, relative to the project directory.
SECRET_FILE: Final = Path(".shardsim") / "secret"
#: Longest token accepted (a guard before any decoding).
MAX_TOKEN_LENGTH: Final = 4096


def _key(secret: str | bytes) -> bytes:
    key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    if not key:
        raise ValueError("the token secret must not be empty")
    return key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_B64URL: Final = re.compile(r"^[A-Za-z0-9_-]*$")


def _unb64(text: str) -> bytes:
    # The decoder skips characters outside the alphabet; we refuse them.
    if not _B64URL.match(text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(key: bytes, signed_part: str) -> bytes:
    return hmac.new(key, signed_part.encode("ascii"), hashlib.sha256).digest()


def make_token(
    secret: str | bytes,
    user_id: str,
    *,
    admin: bool = False,
    ttl: float | None = None,
    now_ms: float,
) -> str:
    """Make a signed token for ``user_id``.

    Args:
        secret: The signing secret (non-empty).
        user_id: Who the token authenticates (non-empty).
        admin: Whether the holder is an admin (may subscribe as anyone).
        ttl: Seconds until it expires; None: it never does.
        now_ms: The current time, ms since the epoch.

    Raises:
        ValueError: an empty secret or user id, or a ``ttl`` that is not positive.
    """
    if not isinstance(user_id, str) or not user_id:
        raise ValueError(f"user_id must be a non-empty string, got {user_id!r}")
    if ttl is not None and not ttl > 0:
        raise ValueError(f"ttl must be a positive number of seconds, got {ttl!r}")
    iat = int(now_ms)
    claims = {
        "sub": user_id,
        "adm": bool(admin),
        "iat": iat,
        "exp": None if ttl is None else iat + int(ttl * 1000),
    }
    payload = _b64(json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    signed = f"{TOKEN_PREFIX}.{payload}"
    return f"{signed}.{_b64(_sign(_key(secret), signed))}"


def _bad(message: str, reason: str = "malformed") -> InvalidToken:
    return InvalidToken(message, reason=reason)


def verify_token(secret: str | bytes, token: str | None, *, now_ms: float) -> ShardAuth:
    """Check a token made by :func:`make_token` and return who it authenticates.

    Returns:
        ``ShardAuth(user_id=sub, admin=adm, claims={...the payload...})``.

    Raises:
        InvalidToken: missing (``reason="missing"``), not a token of this
            format (``"malformed"``), or not signed with ``secret``
            (``"signature"``).
        TokenExpired: its expiry time is at or before ``now_ms``.
    """
    if not token:
        raise _bad("missing bearer token", "missing")
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        raise _bad("malformed token")
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
        raise _bad(f"malformed token: expected {TOKEN_PREFIX}.<payload>.<signature>")
    try:
        given = _unb64(parts[2])
    except (binascii.Error, ValueError):
        raise _bad("malformed token: the signature is not base64url") from None
    expected = _sign(_key(secret), f"{parts[0]}.{parts[1]}")
    # Verify before reading the payload: nothing unsigned is parsed.
    if not hmac.compare_digest(given, expected):
        raise _bad("token signature does not match (wrong secret, or the token was altered)", "signature")
    try:
        claims = json.loads(_unb64(parts[1]))
    except (binascii.Error, ValueError):
        raise _bad("malformed token: the payload is not base64url JSON") from None
    if not isinstance(claims, dict):
        raise _bad("malformed token: the payload is not an object")
    sub, adm, iat, exp = (claims.get(k) for k in ("sub", "adm", "iat", "exp"))
    if not isinstance(sub, str) or not sub:
        raise _bad("malformed token: 'sub' must be a non-empty string")
    if type(adm) is not bool:
        raise _bad("malformed token: 'adm' must be a boolean")
    if type(iat) is not int:
        raise _bad("malformed token: 'iat' must be an integer")
    if exp is not None and type(exp) is not int:
        raise _bad("malformed token: 'exp' must be an integer or null")
    if exp is not None and exp <= now_ms:
        raise TokenExpired(f"token of {sub!r} expired at {exp} (now {int(now_ms)})")
    return ShardAuth(user_id=sub, admin=adm, claims=dict(claims))


class TokenResolver(Protocol):
    """Turns the bearer token of a connect request into who is connecting.

    Implementations may do I/O (look a session up), hence ``async``. They
    must raise :class:`~shards.InvalidToken` to refuse; the endpoint then
    closes the connection with 1008.
    """

    async def resolve(self, token: str | None) -> ShardAuth:
        """Return who ``token`` authenticates (``token`` is None when the request had none)."""
        ...


class HmacTokenResolver:
    """The default resolver: tokens made by :func:`make_token` with one secret.

    Args:
        secret: The signing secret.
        now_ms: The clock expiry is checked against; by default the current
            runtime's :func:`~runtime.now_ms` (so it follows virtual time in tests).
    """

    def __init__(self, secret: str | bytes, *, now_ms: Callable[[], float] | None = None) -> None:
        self._key = _key(secret)
        if now_ms is None:
            from runtime._clock import now_ms as runtime_now_ms

            now_ms = runtime_now_ms
        self._now_ms = now_ms

    async def resolve(self, token: str | None) -> ShardAuth:
        """Verify ``token`` (see :func:`verify_token`)."""
        return verify_token(self._key, token, now_ms=self._now_ms())


def read_dev_vars(path: str | os.PathLike[str]) -> dict[str, str]:
    """Read a ``.dev.vars`` file: ``KEY=VALUE`` lines, ``#`` comments, optional quotes.

    A missing file reads as empty.
    """
    out: dict[str, str] = {}
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return out
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key = key.strip()
        if key.startswith("export "):
            key = key[len("export ") :].strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        out[key] = value
    return out


def load_secret(
    project_dir: str | os.PathLike[str] = ".",
    *,
    vars: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    secret_file: str | os.PathLike[str] | None = None,
) -> str | None:
    """Find the token secret the dev server of ``project_dir`` uses.

    One order for the dev server and ``shardsim token``, so tokens always
    verify: ``secret_file`` when given (it must exist); else ``SHARDSIM_SECRET``
    as the Worker sees it (``vars``: the project's ``[vars]`` with
    ``.dev.vars`` over them; when None, ``project_dir/.dev.vars`` alone), then
    in ``environ`` (default ``os.environ``), then the file
    ``project_dir/.shardsim/secret``. The project's own setting comes before
    the shell's, as with wrangler, which never passes the shell's variables
    to a Worker.

    Returns:
        The secret, or None when there is none yet.

    Raises:
        FileNotFoundError: ``secret_file`` was given and does not exist.
        ValueError: a secret that was found is empty.
    """
    found: Any
    if secret_file is not None:
        found = Path(secret_file).read_text(encoding="utf-8").strip()
    else:
        seen = read_dev_vars(Path(project_dir) / ".dev.vars") if vars is None else vars
        found = seen.get(SECRET_ENV)
        if found is None:
            found = (os.environ if environ is None else environ).get(SECRET_ENV)
        if found is None:
            try:
                found = (Path(project_dir) / SECRET_FILE).read_text(encoding="utf-8").strip()
            except FileNotFoundError:
                return None
    if not isinstance(found, str):
        raise ValueError(f"the token secret {SECRET_ENV} must be a string, got {type(found).__name__}")
    if not found:
        raise ValueError("the token secret is empty")
    return found


def ensure_secret_file(state_dir: str | os.PathLike[str]) -> str:
    """Return the secret in ``state_dir/secret``, creating a random one (mode 0600) if missing.

    For the dev server: ``state_dir`` is the project's ``.shardsim`` directory.
    """
    path = Path(state_dir) / "secret"
    try:
        existing = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        existing = ""
    if existing:
        return existing
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(value + "\n")
    return value
