"""Which process an object belongs to: a counter of forks into this process.

Stores, pools and their worker threads record `epoch` when they are made. In
a child made by ``fork`` the counter differs, so they can tell they were
inherited: they then refuse to be used (`StoreForkedError`) and never delete,
write or wait on anything of the parent's, including at exit.
"""

from __future__ import annotations

import os

__all__ = ["epoch", "inherited"]

#: How many times the processes leading to this one forked (0 in a process
#: that was not forked, or that was started by exec).
epoch = 0


def _forked() -> None:
    global epoch
    epoch += 1


os.register_at_fork(after_in_child=_forked)


def inherited(made_in: int) -> bool:
    """Whether an object made at `made_in` (an `epoch`) was inherited through a fork."""
    return made_in != epoch
