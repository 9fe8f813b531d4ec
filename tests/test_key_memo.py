"""The key store finds a key without a salted hash per configured key on every request
(router/auth.py ``KeyStore._known``): a token once matched, and a key whose clear value was read at
load, by a tag; the same answers as hashing every time, the key's state still read on every
request, nothing remembered for a wrong token and no clear token kept."""

from __future__ import annotations

import time
from typing import Any

import pytest

from router import auth
from router.auth import KeyStore, hash_key, new_key

N_KEYS = 50


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many salted hashes the store compares a token against (one per key tried)."""
    calls = [0]
    real = KeyStore._matches

    def counting(salt: bytes, digest: bytes, token: str) -> bool:
        calls[0] += 1
        return real(salt, digest, token)

    monkeypatch.setattr(KeyStore, "_matches", staticmethod(counting))
    return calls


def config_keys(n: int) -> tuple[KeyStore, list[str]]:
    secrets_ = [f"plain-secret-{i}" for i in range(n)]
    rows = [{"id": f"k{i}", "tenant": f"t{i % 3}", "hash": hash_key(s)} for i, s in enumerate(secrets_)]
    return KeyStore.build(rows, {}, lambda _: None, None), secrets_


def test_a_config_key_is_hashed_against_every_key_once_then_found_by_lookup(hashes: list[int]) -> None:
    store, secrets_ = config_keys(N_KEYS)
    last = secrets_[-1]
    hashes[0] = 0
    p = store.authenticate(last)
    assert p is not None and p.key_id == f"k{N_KEYS - 1}" and p.tenant == f"t{(N_KEYS - 1) % 3}"
    assert hashes[0] == N_KEYS  # the first time: the salted hash of every key in turn
    for _ in range(100):
        assert store.authenticate(last) is p
    assert hashes[0] == N_KEYS  # after: no hashing at all
    for i, s in enumerate(secrets_):  # every key answers as itself
        got = store.authenticate(s)
        assert got is not None and got.key_id == f"k{i}"


def test_a_wrong_token_is_never_remembered_and_costs_the_same_each_time(hashes: list[int]) -> None:
    store, secrets_ = config_keys(N_KEYS)
    hashes[0] = 0
    for i in range(20):
        assert store.authenticate(f"wrong-{i}") is None
        assert store.authenticate(secrets_[0] + "x") is None
    assert hashes[0] == 40 * N_KEYS
    assert store._known == {}  # a flood of wrong tokens does not grow the memo
    assert store.authenticate("") is None and store.authenticate("a" * 513) is None


def test_an_expired_key_is_refused_after_being_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    key = new_key("app-1")
    now = time.time()
    store = KeyStore.build(
        [{"id": "app-1", "tenant": "acme", "hash": hash_key(key), "expires_at": now + 100}], {}, lambda _: None, None
    )
    assert store.authenticate(key) is not None  # remembered while usable
    monkeypatch.setattr(auth.time, "time", lambda: now + 101)
    assert store.authenticate(key) is None  # the key's expiry is read again on every request


def test_a_revoked_key_stays_refused_however_often_it_is_presented(hashes: list[int]) -> None:
    store = KeyStore.build(
        [{"id": "k", "tenant": "t", "hash": hash_key("s"), "revoked": True}], {}, lambda _: None, None
    )
    assert [store.authenticate("s") for _ in range(3)] == [None, None, None]


def test_a_rotated_out_secret_works_only_during_its_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = new_key("app-2"), new_key("app-2")
    now = time.time()
    old_hash = hash_key(old)
    store = KeyStore.build(
        [
            {
                "id": "app-2",
                "tenant": "acme",
                "hash": hash_key(new),
                "previous_hash": old_hash,
                "previous_until": now + 10,
            }
        ],
        {},
        lambda _: None,
        None,
    )
    for _ in range(2):  # first by hashing, then from the memo: the same answers
        assert store.authenticate(old) is not None and store.authenticate(new) is not None
    monkeypatch.setattr(auth.time, "time", lambda: now + 11)
    assert store.authenticate(old) is None  # the grace is over, memo or not
    assert store.authenticate(new) is not None
    assert store.authenticate(new_key("app-2")) is None  # another secret of the same id


def test_a_switchyard_key_is_found_by_its_id_not_by_scanning(hashes: list[int]) -> None:
    key = new_key("issued")
    rows = [{"id": f"k{i}", "tenant": "t", "hash": hash_key(f"s{i}")} for i in range(N_KEYS)]
    store = KeyStore.build([*rows, {"id": "issued", "tenant": "acme", "hash": hash_key(key)}], {}, lambda _: None, None)
    hashes[0] = 0
    assert store.authenticate(key) is not None
    assert hashes[0] == 1
    # a wrong secret for a known id is refused without scanning the other keys
    hashes[0] = 0
    assert store.authenticate(key[:-1] + ("0" if key[-1] != "0" else "1")) is None
    assert hashes[0] == 1


def env_keys(n: int, hashed: int = 0) -> tuple[KeyStore, list[str]]:
    """``n`` keys given by environment reference (their clear value read at load), then ``hashed``
    keys given by their hash alone."""
    env = {f"KEY_{i}": f"env-secret-{i}" for i in range(n)}
    rows: list[dict[str, Any]] = [{"id": f"e{i}", "tenant": "t", "key": f"os.environ/KEY_{i}"} for i in range(n)]
    rows += [{"id": f"h{i}", "tenant": "t", "hash": hash_key(f"hashed-secret-{i}")} for i in range(hashed)]
    store = KeyStore.build(rows, {}, lambda ref: env.get(ref.removeprefix("os.environ/")), None)
    return store, [*env.values(), *(f"hashed-secret-{i}" for i in range(hashed))]


def test_keys_read_at_load_are_found_without_hashing_and_so_are_wrong_tokens(hashes: list[int]) -> None:
    store, secrets_ = env_keys(N_KEYS)
    hashes[0] = 0
    for i, s in enumerate(secrets_):
        got = store.authenticate(s)
        assert got is not None and got.key_id == f"e{i}"
    for i in range(20):
        assert store.authenticate(f"wrong-{i}") is None
    assert hashes[0] == 0  # no salted hash for a key whose clear value the store was given
    # the store keeps no clear token: only tags it keyed itself
    assert all(len(tag) == 32 and tag not in {s.encode() for s in secrets_} for tag in store._known)
    assert store.authenticate("") is None  # an empty secret (an unset variable) matches nothing


def test_hashed_keys_beside_keys_read_at_load_are_still_found(hashes: list[int]) -> None:
    store, secrets_ = env_keys(N_KEYS, hashed=3)
    hashes[0] = 0
    got = store.authenticate(secrets_[-1])
    assert got is not None and got.key_id == "h2"
    assert hashes[0] == 3  # only the keys known by their hash alone are tried
    hashes[0] = 0
    assert store.authenticate("wrong") is None
    assert hashes[0] == 3


def test_an_unset_environment_key_matches_nothing() -> None:
    store = KeyStore.build([{"id": "e", "tenant": "t", "key": "os.environ/UNSET"}], {}, lambda _: None, None)
    assert store.authenticate("") is None and store.authenticate("x") is None and len(store) == 1
