"""A process that calls a persisted memoized function once and reports.

Usage: ``python memo_child.py TEMP LOCATION ARGUMENT``

Prints ``result <value> computed <n> restored <m>``: the result, how many
times the function ran in this process, and how many results were restored
from the location.
"""

from __future__ import annotations

import sys

import file_backed as fb

computed = 0


def main(temp: str, location: str, argument: int) -> None:
    with fb.open_store("fs_hardlink", path=temp) as store:
        pool: fb.FBPool[object] = fb.FBPool(store, max_items=4)

        @fb.memoize(pool, store.track_path(location), name="tests.memo_child.simulate")
        def simulate(x: int) -> dict[str, int]:
            global computed
            computed += 1
            return {"x": x, "square": x * x}

        result = simulate(argument)
        info = simulate.cache_info()
        print(f"result {result['square']} computed {computed} restored {info.restored}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
