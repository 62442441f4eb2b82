from __future__ import annotations

import random
import re

import pytest

from runtime._ids import (
    INVALID_ID_MESSAGE,
    MAX_VISIBLE_NAME_BYTES,
    WRONG_NAMESPACE_MESSAGE,
    IdFactory,
)
from shards._errors import DurableObjectError, InvalidIdError

INVALID = "^" + re.escape(INVALID_ID_MESSAGE) + "$"
FOREIGN = "^" + re.escape(WRONG_NAMESPACE_MESSAGE) + "$"
# idFromName("room-1") in namespace "Counter"; pinned because ids name files on disk.
PINNED_ROOM_1 = "6ce78950e0ee1f10e69f54ef03ff757b23ddd49cb32efa3b23205667f274e275"


def factory(key: str = "Counter", seed: int = 1) -> IdFactory:
    return IdFactory(key, random.Random(seed))


def test_messages_are_productions():
    """The two idFromString messages are workerd's, verbatim."""
    assert INVALID_ID_MESSAGE == "Invalid Durable Object ID: must be 64 hex digits"
    assert WRONG_NAMESPACE_MESSAGE == "Durable Object ID is not valid for this namespace."


def test_id_from_name_is_deterministic():
    """The same name gives the same id, also from a fresh factory (a restart)."""
    a = factory().idFromName("room-1")
    b = factory(seed=99).idFromName("room-1")
    assert a == b
    assert a.equals(b)
    assert hash(a) == hash(b)
    assert a.toString() == b.toString()


def test_id_from_name_is_stable_across_releases():
    """Object files are named by ids: the derivation must never change."""
    assert factory().idFromName("room-1").toString() == PINNED_ROOM_1


def test_different_names_give_different_ids():
    """Two names in one namespace map to two objects."""
    f = factory()
    assert f.idFromName("a") != f.idFromName("b")


def test_different_namespaces_give_different_ids():
    """The same name in two namespaces maps to two objects."""
    assert factory("Counter").idFromName("x") != factory("Chat").idFromName("x")


def test_id_shape():
    """An id is 64 lowercase hex digits; str() gives the same."""
    for object_id in (factory().idFromName("n"), factory().newUniqueId()):
        text = object_id.toString()
        assert re.fullmatch(r"[0-9a-f]{64}", text)
        assert str(object_id) == text


def test_name_property():
    """id.name is the idFromName name; None for unique ids and parsed ids."""
    f = factory()
    named = f.idFromName("room-1")
    assert named.name == "room-1"
    assert f.newUniqueId().name is None
    parsed = f.idFromString(named.toString())
    assert parsed.name is None
    assert parsed == named


@pytest.mark.parametrize("name", ["", " ", "ünïcødé", "🎲", "a" * 5000, "x\x00y"])
def test_any_string_is_a_name(name):
    """Names of any content and length derive ids that round-trip."""
    f = factory()
    object_id = f.idFromName(name)
    assert object_id.name == name
    assert f.idFromString(object_id.toString()) == object_id


def test_lone_surrogates_derive_like_javascript():
    """A lone surrogate is U+FFFD by the time a JS engine hands the name over."""
    f = factory()
    assert f.idFromName("a\ud800b") == f.idFromName("a\ufffdb")
    assert f.idFromName("\ud83c\udfb2") == f.idFromName("🎲")


def test_id_from_name_refuses_non_strings():
    """A name must be a str."""
    with pytest.raises(InvalidIdError, match=r"^idFromName\(\) takes a str name, not int$"):
        factory().idFromName(5)  # type: ignore[arg-type]


def test_new_unique_ids_are_seeded_and_distinct():
    """Unique ids come from the injected rng: distinct, and replayable by seed."""
    f = factory(seed=7)
    many = [f.newUniqueId() for _ in range(1000)]
    assert len(set(many)) == 1000
    assert factory(seed=7).newUniqueId() == many[0]
    assert factory(seed=8).newUniqueId() != many[0]
    assert all(f.owns(object_id) for object_id in many)


def test_new_unique_id_accepts_jurisdiction():
    """A jurisdiction, as options or keyword, is accepted and changes nothing."""
    f = factory()
    object_id = f.newUniqueId({"jurisdiction": "eu"})
    assert object_id.jurisdiction is None
    assert f.newUniqueId(jurisdiction="eu").name is None
    assert f.idFromString(object_id.toString()) == object_id


def test_id_from_string_accepts_uppercase():
    """Hex digits of either case parse; toString() is lowercase."""
    f = factory()
    object_id = f.newUniqueId()
    parsed = f.idFromString(object_id.toString().upper())
    assert parsed == object_id
    assert parsed.toString() == object_id.toString()


@pytest.mark.parametrize(
    "text",
    [
        "",
        "abc",
        "0" * 63,
        "0" * 65,
        "g" * 64,
        " " + "0" * 63,
        "0" * 63 + "\n",
        "0" * 32 + " " + "0" * 31,
        "not a hex id, but this is carefully crafted to be 64 characters!",
        "\uff10" * 64,
    ],
)
def test_id_from_string_refuses_malformed(text):
    """Anything but exactly 64 hex digits is refused with production's message."""
    with pytest.raises(InvalidIdError, match=INVALID):
        factory().idFromString(text)


def test_id_from_string_refuses_non_strings():
    """A non-string is not 64 hex digits either."""
    with pytest.raises(InvalidIdError, match=INVALID):
        factory().idFromString(None)  # type: ignore[arg-type]


def test_id_from_string_refuses_foreign_ids():
    """An id made by another namespace is refused, named or unique."""
    other = factory("Chat")
    mine = factory("Counter")
    for foreign in (other.idFromName("x"), other.newUniqueId()):
        with pytest.raises(InvalidIdError, match=FOREIGN):
            mine.idFromString(foreign.toString())
    assert not mine.owns(other.idFromName("x"))
    assert mine.owns(mine.idFromName("x"))


def test_not_every_hex_string_is_an_id():
    """Most 64-hex strings fail the checksum; flipping one digit breaks an id."""
    f = factory()
    with pytest.raises(InvalidIdError, match=FOREIGN):
        f.idFromString("0" * 64)
    text = f.idFromName("x").toString()
    flipped = ("1" if text[0] != "1" else "2") + text[1:]
    with pytest.raises(InvalidIdError, match=FOREIGN):
        f.idFromString(flipped)


def test_invalid_id_error_is_a_type_error():
    """InvalidIdError is in production's TypeError family and our tree."""
    with pytest.raises(TypeError):
        factory().idFromString("x")
    assert issubclass(InvalidIdError, DurableObjectError)


def test_equals_refuses_non_ids():
    """equals() takes an id, as production's type check demands."""
    with pytest.raises(
        InvalidIdError,
        match=r"^Failed to execute 'equals' on 'DurableObjectId': "
        r"parameter 1 is not of type 'DurableObjectId'\.$",
    ):
        factory().idFromName("x").equals("x")  # type: ignore[arg-type]


def test_eq_and_hash():
    """== follows equals(); ids work as dict keys and never equal strings."""
    f = factory()
    a = f.idFromName("a")
    assert a != a.toString()
    assert {a: 1}[f.idFromString(a.toString())] == 1
    assert a != f.idFromName("b")


def test_ids_are_immutable():
    """Neither the name nor the bytes can be changed or deleted."""
    object_id = factory().idFromName("a")
    with pytest.raises(AttributeError, match=r"^DurableObjectId is immutable; cannot set 'name'$"):
        object_id.name = "b"
    with pytest.raises(AttributeError, match=r"^DurableObjectId is immutable; cannot delete 'name'$"):
        del object_id.name


def test_repr():
    """repr shows the hex and, when known, the name."""
    f = factory()
    named = f.idFromName("room")
    assert repr(named) == f"DurableObjectId({named.toString()!r}, name='room')"
    unique = f.newUniqueId()
    assert repr(unique) == f"DurableObjectId({unique.toString()!r})"
    assert repr(f) == "IdFactory('Counter')"


def test_for_object_keeps_short_names():
    """Inside the object, a name of up to 1,024 UTF-8 bytes is visible."""
    f = factory()
    short = f.idFromName("room")
    assert short.for_object() is short
    edge = f.idFromName("é" * (MAX_VISIBLE_NAME_BYTES // 2))
    assert edge.for_object().name == edge.name


def test_for_object_hides_long_names():
    """A name of more than 1,024 UTF-8 bytes is not shown inside the object."""
    f = factory()
    long_id = f.idFromName("é" * (MAX_VISIBLE_NAME_BYTES // 2) + "x")
    seen = long_id.for_object()
    assert long_id.name is not None
    assert seen.name is None
    assert seen == long_id


def test_for_object_of_nameless_ids():
    """Unique and parsed ids show no name inside the object either."""
    f = factory()
    unique = f.newUniqueId()
    assert unique.for_object().name is None
    assert f.idFromString(f.idFromName("x").toString()).for_object().name is None
