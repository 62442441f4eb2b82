"""HMAC tokens, the default resolver, where secrets come from, and ``shardsim token``."""

from __future__ import annotations

import os

import pytest

from runtime.cli import main
from runtime.shard_objects import (
    HmacTokenResolver,
    InvalidToken,
    TokenExpired,
    ensure_secret_file,
    load_secret,
    make_token,
    read_dev_vars,
    verify_token,
)
from shards import ShardAuth, Unauthorized

NOW = 1_767_225_600_000


def test_round_trip() -> None:
    tok = make_token("s3cret", "alice", admin=True, ttl=60, now_ms=NOW)
    auth = verify_token("s3cret", tok, now_ms=NOW + 59_999)
    assert auth.user_id == "alice"
    assert auth.admin
    assert auth.claims == {"sub": "alice", "adm": True, "iat": NOW, "exp": NOW + 60_000}
    assert verify_token(b"s3cret", make_token("s3cret", "bob", now_ms=NOW), now_ms=NOW * 2) == ShardAuth(
        user_id="bob", admin=False, claims={"sub": "bob", "adm": False, "iat": NOW, "exp": None}
    )


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (None, "missing"),
        ("", "missing"),
        ("alice", "malformed"),  # never a bare user id
        ("shs1.a.b.c", "malformed"),
        ("jwt.a.b", "malformed"),
        ("shs1.e30.@@@", "malformed"),
        ("x" * 5000, "malformed"),
    ],
)
def test_malformed_tokens(token, reason) -> None:
    with pytest.raises(InvalidToken) as info:
        verify_token("s", token, now_ms=NOW)
    assert info.value.reason == reason
    assert isinstance(info.value, Unauthorized)


def test_forged_and_expired_tokens() -> None:
    tok = make_token("s", "alice", now_ms=NOW)
    with pytest.raises(InvalidToken, match="signature") as info:
        verify_token("other", tok, now_ms=NOW)
    assert info.value.reason == "signature"
    head, _payload, sig = tok.split(".")
    forged_payload = make_token("s", "mallory", now_ms=NOW).split(".")[1]
    with pytest.raises(InvalidToken, match="signature"):
        verify_token("s", f"{head}.{forged_payload}.{sig}", now_ms=NOW)
    short = make_token("s", "alice", ttl=1, now_ms=NOW)
    with pytest.raises(TokenExpired, match="expired") as expired:
        verify_token("s", short, now_ms=NOW + 1000)
    assert expired.value.reason == "expired"


def test_signed_but_malformed_claims_are_refused() -> None:
    import base64
    import hashlib
    import hmac
    import json

    def signed(claims: object) -> str:
        payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        sig = hmac.new(b"s", f"shs1.{payload}".encode(), hashlib.sha256).digest()
        return f"shs1.{payload}.{base64.urlsafe_b64encode(sig).rstrip(b'=').decode()}"

    for claims, match in [
        ([1], "not an object"),
        ({"sub": "", "adm": False, "iat": 0, "exp": None}, "'sub'"),
        ({"sub": "a", "adm": 1, "iat": 0, "exp": None}, "'adm'"),
        ({"sub": "a", "adm": False, "iat": "0", "exp": None}, "'iat'"),
        ({"sub": "a", "adm": False, "iat": 0, "exp": 1.5}, "'exp'"),
    ]:
        with pytest.raises(InvalidToken, match=match):
            verify_token("s", signed(claims), now_ms=0)


def test_make_token_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="user_id"):
        make_token("s", "", now_ms=NOW)
    with pytest.raises(ValueError, match="ttl"):
        make_token("s", "a", ttl=0, now_ms=NOW)
    with pytest.raises(ValueError, match="secret"):
        make_token("", "a", now_ms=NOW)


async def test_resolver_uses_the_clock_it_is_given() -> None:
    resolver = HmacTokenResolver("s", now_ms=lambda: NOW + 5000)
    assert (await resolver.resolve(make_token("s", "a", ttl=10, now_ms=NOW))).user_id == "a"
    with pytest.raises(TokenExpired):
        await resolver.resolve(make_token("s", "a", ttl=1, now_ms=NOW))


def test_secret_sources_in_order(tmp_path) -> None:
    assert load_secret(tmp_path, environ={}) is None
    generated = ensure_secret_file(tmp_path / ".shardsim")
    assert ensure_secret_file(tmp_path / ".shardsim") == generated  # kept, not replaced
    assert (os.stat(tmp_path / ".shardsim" / "secret").st_mode & 0o777) == 0o600
    assert load_secret(tmp_path, environ={}) == generated
    (tmp_path / ".dev.vars").write_text('# local\nOTHER=1\nexport SHARDSIM_SECRET="from-dev-vars"\n')
    assert read_dev_vars(tmp_path / ".dev.vars") == {"OTHER": "1", "SHARDSIM_SECRET": "from-dev-vars"}
    assert load_secret(tmp_path, environ={}) == "from-dev-vars"
    # The project's setting beats the shell's, as the dev server sees it.
    assert load_secret(tmp_path, environ={"SHARDSIM_SECRET": "from-env"}) == "from-dev-vars"
    assert load_secret(tmp_path, vars={}, environ={"SHARDSIM_SECRET": "from-env"}) == "from-env"
    assert load_secret(tmp_path, vars={"SHARDSIM_SECRET": "from-vars"}, environ={}) == "from-vars"
    (tmp_path / "explicit").write_text("explicit\n")
    assert (
        load_secret(tmp_path, environ={"SHARDSIM_SECRET": "e"}, secret_file=tmp_path / "explicit")
        == "explicit"
    )
    with pytest.raises(ValueError, match="empty"):
        load_secret(tmp_path, vars={}, environ={"SHARDSIM_SECRET": ""})
    with pytest.raises(ValueError, match="must be a string"):
        load_secret(tmp_path, vars={"SHARDSIM_SECRET": 7})


def test_cli_token(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SHARDSIM_SECRET", raising=False)
    assert main(["token", "alice"]) == 2
    assert "no token secret" in capsys.readouterr().err
    monkeypatch.setenv("SHARDSIM_SECRET", "cli-secret")
    assert main(["token", "alice", "--admin", "--ttl", "60"]) == 0
    tok = capsys.readouterr().out.strip()
    auth = verify_token("cli-secret", tok, now_ms=verify_claims_now(tok))
    assert (auth.user_id, auth.admin) == ("alice", True)
    assert auth.claims["exp"] - auth.claims["iat"] == 60_000
    (tmp_path / "key").write_text("file-secret")
    assert main(["token", "bob", "--secret-file", str(tmp_path / "key")]) == 0
    assert verify_token("file-secret", capsys.readouterr().out.strip(), now_ms=0).user_id == "bob"
    assert main(["token", "bob", "--secret-file", str(tmp_path / "missing")]) == 2
    assert main(["token", "bob", "--ttl", "-5"]) == 2


def test_cli_token_uses_the_secret_the_dev_server_uses(tmp_path, monkeypatch, capsys) -> None:
    """[vars] in the Wrangler config and .dev.vars come before the shell's variable, for both."""
    from runtime.devserver._shards import ShardEndpoint

    (tmp_path / "wrangler.toml").write_text(
        'name = "x"\nmain = "worker.py"\n\n[vars]\nSHARDSIM_SECRET = "from-config"\n'
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SHARDSIM_SECRET", "from-shell")
    assert main(["token", "alice"]) == 2  # a config the dev server could not load either
    assert "worker.py" in capsys.readouterr().err
    (tmp_path / "worker.py").write_text("")
    assert main(["token", "alice"]) == 0
    tok = capsys.readouterr().out.strip()
    assert verify_token("from-config", tok, now_ms=verify_claims_now(tok)).user_id == "alice"
    endpoint = ShardEndpoint(
        {}, {"SHARDSIM_SECRET": "from-config"}, tmp_path, state_dir=tmp_path / ".shardsim"
    )
    assert endpoint.resolver._key == HmacTokenResolver("from-config")._key  # type: ignore[attr-defined]


def verify_claims_now(token: str) -> int:
    import base64
    import json

    payload = token.split(".")[1]
    return int(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["iat"])
