"""SIGKILL at any point of repeated saves of a collection: a reader sees one
whole save, the last one confirmed or the one after it, never a mix; the next
save clears what a killed one left."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import file_backed as fb
from file_backed.derived_keys import KIND_MANIFEST, kind_of
from tests.durability.collection_child import names_of, value_of
from tests.durability.test_sigkill import final_names_are_whole

CHILD = Path(__file__).with_name("collection_child.py")
KILLS = 25
STEPS_PER_SAVE = 12  # roughly the child's step lines per save


def read_collection(temp: Path, location: Path) -> tuple[int, dict[str, bytes]]:
    """The save number the collection at `location` holds and its contents,
    read by a fresh store (as a later process would)."""
    with fb.open_store("fs_hardlink", path=temp, codec="bytes") as store:
        contents = dict(fb.FBDict.open(fb.FBPool(store, max_items=4), store.track_path(location), name="run"))
    numbers = {int(value.split(b":")[0]) for name, value in contents.items() if name != "keep"}
    assert len(numbers) == 1, f"values of several saves are mixed: {sorted(numbers)}"
    return numbers.pop(), contents


def run_child(temp: Path, location: Path, first: int, steps: int | None) -> int:
    """Run the child from save `first`; kill it after `steps` step lines (None:
    once it confirmed one save). Returns the last save it confirmed (first - 1 if none)."""
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(temp), str(location), str(first)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert child.stdout is not None
    confirmed = first - 1
    try:
        assert child.stdout.readline() == "ready\n", "the child failed to start"
        seen = 0
        while steps is None or seen < steps:
            line = child.stdout.readline()
            assert line, "the child died before it was killed"
            if line.startswith("saved "):
                confirmed = int(line.split()[1])
                if steps is None:
                    break
            else:
                seen += 1
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    # The child may have gone on before the signal landed: what it confirmed is still in the pipe.
    for line in child.stdout:
        if line.startswith("saved "):
            confirmed = int(line.split()[1])
    child.stdout.close()
    return confirmed


@pytest.mark.timeout(120)
def test_sigkill_during_saves_leaves_one_whole_save(tmp_path: Path) -> None:
    temp, location = tmp_path / "temp", tmp_path / "persisted"
    rng = random.Random(int.from_bytes(os.urandom(4), "little"))
    confirmed = run_child(temp, location, 1, None)
    kills_after_commit = 0
    for round_ in range(KILLS):
        confirmed = run_child(temp, location, confirmed + 1, rng.randrange(1, 3 * STEPS_PER_SAVE))
        number, contents = read_collection(temp, location)
        assert number in (confirmed, confirmed + 1), f"round {round_}: read save {number}, confirmed {confirmed}"
        assert set(contents) == names_of(number) | {"keep"}, f"round {round_}: names of save {number} differ"
        assert all(contents[name] == value_of(number, name) for name in names_of(number))
        assert contents["keep"] == b"kept"
        kills_after_commit += number == confirmed + 1
        final_names_are_whole(location)
        confirmed = number

    # One save that completes clears what the killed ones left: the location
    # holds exactly its manifest and its values.
    confirmed = run_child(temp, location, confirmed + 1, None)
    number, contents = read_collection(temp, location)
    assert number == confirmed
    with fb.open_store("fs_hardlink", path=temp, codec="bytes") as store:
        tracked = store.track_path(location)
        manifests = [key for key in tracked if kind_of(key) == KIND_MANIFEST]
        d = fb.FBDict.open(fb.FBPool(store, max_items=4), tracked, name="run")
        values = {d.handle(name).key for name in d}
        assert len(manifests) == 1
        assert set(tracked.keys()) == values | set(manifests), "blobs of killed saves were left behind"
    print(f"{KILLS} kills, {kills_after_commit} after the commit point, the last read save {number}")
