"""Optional dependencies: which extra of a distribution provides a missing module.

A plugin whose entry point fails to import because a module its distribution
declares only under an extra is absent (the ``numpy`` codec without numpy) is
*not installed*, not broken: `install_hint` names the command that installs it.

>>> requirement_of('numpy>=1.24; extra == "numpy"')
('numpy', 'numpy')
"""

from __future__ import annotations

import re

__all__ = ["install_hint", "requirement_of"]

_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_EXTRA = re.compile(r"""\bextra\s*==\s*["']([^"']+)["']""")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_of(line: str) -> tuple[str, str | None] | None:
    """The distribution name and the extra (None outside any extra) of one
    ``Requires-Dist`` line, or None when the line cannot be read."""
    match = _NAME.match(line)
    if match is None:
        return None
    extra = _EXTRA.search(line.partition(";")[2])
    return match.group(1), extra.group(1) if extra else None


def install_hint(distribution: str | None, module: str | None) -> str | None:
    """``pip install 'DIST[EXTRA]'`` when the installed `distribution` declares the
    top-level package of `module` under an extra; None when it does not (then
    the module is not an optional dependency and the plugin is broken).

    The module's top-level name is compared with the requirement's name, with
    ``-``, ``_`` and ``.`` treated alike; of several extras declaring it, the
    one named like it wins (``numpy`` over ``test``).
    """
    if distribution is None or not module:
        return None
    import importlib.metadata

    try:
        requires = importlib.metadata.requires(distribution) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    wanted = _canonical(module.partition(".")[0])
    extras = [
        parsed[1]
        for parsed in map(requirement_of, requires)
        if parsed is not None and parsed[1] is not None and _canonical(parsed[0]) == wanted
    ]
    if not extras:
        return None
    named_alike = [extra for extra in extras if _canonical(extra) == wanted]
    return f"pip install '{distribution}[{(named_alike or extras)[0]}]'"
