"""``file-backed bench``: the benchmark suite (see docs/benchmarks.md).

The suite lives in the checkout's ``benchmarks/`` folder. An editable install
(the README's and noxfile's ``pip install -e .``) runs it from the checkout
next to this source tree, so edits to the suite take effect at once; a regular
wheel carries a copy as the top-level package ``file_backed_benchmarks``
(hatch ``force-include`` in pyproject.toml). Both are loaded under that one
name; the suite's modules import each other relatively. Its peers (zict,
diskcache, cachetools) and numpy come from the ``bench`` extra.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import click

__all__ = ["bench"]

SUITE = "file_backed_benchmarks"
#: The suite's ``--only`` names, in running order (kept here so ``--help``
#: works without importing numpy and the peers). ``dask`` and ``s3`` run only
#: when named.
WORKLOAD_NAMES = (
    "hit",
    "floor",
    "persist",
    "threads",
    "memory",
    "w4",
    "aload",
    "w3",
    "w2",
    "w1",
    "scale",
    "dask",
    "s3",
)


def _checkout_suite() -> Path | None:
    """The ``benchmarks`` folder of the checkout this package is installed
    from in editable mode, or None for a regular install."""
    root = Path(__file__).resolve().parents[3]  # <root>/src/file_backed/cli/bench.py
    folder = root / "benchmarks"
    if (root / "pyproject.toml").is_file() and (folder / "runner.py").is_file():
        return folder
    return None


def load_runner() -> ModuleType:
    """The suite's ``runner`` module: from the checkout when there is one,
    else the installed ``file_backed_benchmarks``. Raises `click.ClickException`
    when neither exists or numpy is missing."""
    if SUITE not in sys.modules:
        folder = _checkout_suite()
        if folder is not None:
            spec = importlib.util.spec_from_file_location(
                SUITE, folder / "__init__.py", submodule_search_locations=[str(folder)]
            )
            assert spec is not None and spec.loader is not None, f"{folder} is a package folder"
            package = importlib.util.module_from_spec(spec)
            sys.modules[SUITE] = package
            spec.loader.exec_module(package)
    try:
        return importlib.import_module(f"{SUITE}.runner")
    except ModuleNotFoundError as error:
        if error.name == "numpy":
            raise click.ClickException(
                "the benchmarks need numpy and the peers: pip install 'file-backed[bench]'"
            ) from None
        if error.name in (SUITE, f"{SUITE}.runner"):
            raise click.ClickException(
                "the benchmark suite is not installed: run from a checkout (pip install -e .) "
                "or install a wheel built from one"
            ) from None
        raise


@click.command()
@click.option("--full", "mode", flag_value="full", help="Full sizes, as in docs/benchmarks.md (several minutes).")
@click.option("--quick", "mode", flag_value="quick", default=True, help="Reduced sizes, under a minute (default).")
@click.option("--smoke", "mode", flag_value="smoke", help="Tiny sizes that only check the suite runs.")
@click.option(
    "--only",
    multiple=True,
    type=click.Choice(WORKLOAD_NAMES),
    help="Run only this workload (repeatable); dask and s3 run only when named.",
)
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write the report here."
)
@click.option(
    "--profile",
    "profile_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Profile the library's measured sections; write <label>.pstats here and print the top functions.",
)
def bench(mode: str, only: tuple[str, ...], json_path: Path | None, profile_dir: Path | None) -> None:
    """Benchmark the library against zict, diskcache, cachetools and the raw disk."""
    from rich.console import Console

    runner = load_runner()
    console = Console(width=None if sys.stdout.isatty() else 160)
    report = runner.run_suite(mode, only, profile_dir=profile_dir, console=console)
    runner.render(report, console)
    if json_path is not None:
        runner.write_json(report, json_path)
        console.print(f"report written to {json_path}")
