"""Item keys: random version-4 UUIDs, as `uuid.uuid4` gives, that never repeat
across draws, seeds of `random`, or a fork."""

from __future__ import annotations

import os
import pickle
import random
import uuid

import pytest

from file_backed.keys import new_key, random_hex


def test_new_keys_are_version_4_uuids_of_the_rfc_4122_variant() -> None:
    key = new_key()
    assert type(key) is uuid.UUID
    assert key.version == 4
    assert key.variant == uuid.RFC_4122
    assert key.is_safe is uuid.SafeUUID.unknown


def test_a_new_key_equals_and_hashes_as_the_uuid_parsed_from_its_text() -> None:
    key = new_key()
    parsed = uuid.UUID(str(key))
    assert parsed == key
    assert hash(parsed) == hash(key)
    assert {parsed: 1}[key] == 1


def test_a_new_key_survives_pickling() -> None:
    key = new_key()
    assert pickle.loads(pickle.dumps(key)) == key


def test_a_new_key_is_immutable() -> None:
    key = new_key()
    with pytest.raises(TypeError):
        key.int = 0  # type: ignore[misc]


def test_new_keys_do_not_repeat() -> None:
    keys = {new_key() for _ in range(100_000)}
    assert len(keys) == 100_000


def test_seeding_the_random_module_does_not_repeat_keys() -> None:
    random.seed(1234)
    first = new_key()
    random.seed(1234)
    assert new_key() != first


def test_random_hex_gives_the_digits_asked_for() -> None:
    digits = random_hex(12)
    assert len(digits) == 12
    int(digits, 16)


@pytest.mark.timeout(60)
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded, use of fork")
def test_a_forked_child_draws_other_keys_than_its_parent() -> None:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send its next key and leave without exit handlers
        os.close(read_end)
        os.write(write_end, new_key().bytes)
        os._exit(0)
    os.close(write_end)
    try:
        child_key = uuid.UUID(bytes=os.read(read_end, 16))
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
    assert child_key != new_key()
