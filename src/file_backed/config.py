"""Configuration by name: a pool described in TOML (or a mapping) and opened from it.

A configuration is the ``[file_backed]`` table of a ``file_backed.toml``, the
``[tool.file_backed]`` table of a ``pyproject.toml``, or a mapping with the same
keys. It is structured into `FileBackedConfig` by a cattrs converter that
forbids unknown keys and accepts no implicit conversion (``max_items = "10"``
is an error, not 10). Every mistake raises `ConfigError` whose message names
the source, the key path (``$.max_items``) and what was expected, with the
closest valid name where one exists.

>>> config = load_config({"backend": "memory", "max_items": 10, "max_bytes": "1 KiB"})
>>> config.backend, config.max_items, config.max_bytes
('memory', 10, 1024)
"""

from __future__ import annotations

import difflib
import inspect
import os
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NewType, NoReturn

import attrs
import cattrs
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError
from cattrs.gen import make_dict_structure_fn, override

from file_backed.errors import ConfigError, PluginNotFoundError
from file_backed.opening import _parameters
from file_backed.option_types import declared_types, type_mismatch
from file_backed.plugins import BACKENDS_GROUP, CODECS_GROUP, PLUGINS_GROUP, get_backend, get_codec, installed
from file_backed.redaction import redacted
from file_backed.sizes import format_size, parse_size

if TYPE_CHECKING:
    from file_backed.pool import FBPool

__all__ = [
    "CONFIG_FILE",
    "PYPROJECT_FILE",
    "FileBackedConfig",
    "find_config_file",
    "format_size",
    "load_config",
    "open_pool",
    "parse_size",
]

#: The file name of a dedicated configuration file (table ``[file_backed]``).
CONFIG_FILE = "file_backed.toml"
#: The project file whose ``[tool.file_backed]`` table is a configuration.
PYPROJECT_FILE = "pyproject.toml"

#: An integer of at least 1 (``max_items``, ``workers``).
PositiveInt = NewType("PositiveInt", int)
#: A number of bytes of at least 1, given as an int or as text with a unit.
ByteSize = NewType("ByteSize", int)


def _positive(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"expected an integer of at least 1, got {value}")
    return value


def _validate_positive(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        try:
            _positive(value)
        except (TypeError, ValueError) as error:
            raise type(error)(f"{attribute.name}: {error}") from None


def _validate_size(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        try:
            parse_size(value)
        except (TypeError, ValueError) as error:
            raise type(error)(f"{attribute.name}: {error}") from None


@attrs.frozen(kw_only=True)
class FileBackedConfig:
    """A pool and its store, by name. Every attribute is a key of the ``[file_backed]`` table.

    Names (backend, codec, plugins) and options are checked against what is
    installed by `load_config`, not at construction. The classes reject
    values of the wrong type or range when constructed directly, too.
    """

    #: Name of an installed backend (entry point group ``file_backed.backends``).
    backend: str = "fs_hardlink"
    #: Name of an installed codec (entry point group ``file_backed.codecs``).
    codec: str = "pickle"
    #: How many items the pool keeps in memory (at least 1).
    max_items: PositiveInt = attrs.field(default=PositiveInt(1000), validator=_validate_positive)
    #: Optional bound on the bytes in memory: an int, or text with a unit ("2 GiB").
    max_bytes: ByteSize | None = attrs.field(default=None, validator=_validate_size)
    #: Background worker threads of the store; default: the store's own default.
    workers: PositiveInt | None = attrs.field(default=None, validator=_validate_positive)
    #: Names of middleware plugins to enable (entry point group ``file_backed.plugins``).
    plugins: tuple[str, ...] = ()
    #: Keyword options for the backend factory (the ``[file_backed.options]`` table).
    options: Mapping[str, Any] = attrs.field(factory=dict, repr=lambda value: repr(redacted(value)))
    #: Keyword options for the codec class (the ``[file_backed.codec_options]`` table).
    codec_options: Mapping[str, Any] = attrs.field(factory=dict, repr=lambda value: repr(redacted(value)))
    #: Where the configuration came from (a file and table, or "<mapping>"); not a key.
    source: str = attrs.field(default="<defaults>", eq=False)


# -- structuring -------------------------------------------------------------------------


def _structure_str(value: object, _type: type) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {type(value).__name__} {value!r}")
    return value


def _structure_names(value: object, _type: type) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
        raise TypeError(f'expected a list of names such as ["metrics"], got {value!r}')
    return tuple(value)


def _structure_table(value: object, _type: type) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise TypeError(f"expected a table of options, got {type(value).__name__} {value!r}")
    return dict(value)


def _make_converter() -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=True)
    converter.register_structure_hook(str, _structure_str)
    converter.register_structure_hook(PositiveInt, lambda value, _type: _positive(value))
    converter.register_structure_hook(ByteSize, lambda value, _type: parse_size(value))
    converter.register_structure_hook_func(lambda type_: type_ == tuple[str, ...], _structure_names)
    converter.register_structure_hook_func(lambda type_: type_ == Mapping[str, Any], _structure_table)
    converter.register_structure_hook(
        FileBackedConfig,
        make_dict_structure_fn(FileBackedConfig, converter, _cattrs_forbid_extra_keys=True, source=override(omit=True)),
    )
    return converter


_CONVERTER = _make_converter()
_KEYS = tuple(field.name for field in attrs.fields(FileBackedConfig) if field.name != "source")


def _closest(name: str, choices: list[str] | tuple[str, ...]) -> str:
    found = difflib.get_close_matches(name, choices, n=1)
    return f" Did you mean {found[0]!r}?" if found else ""


def _describe_error(error: BaseException) -> str:
    if isinstance(error, KeyError):
        return f"missing {error}"
    return str(error)


def _problems(error: BaseException, path: str = "$") -> list[str]:
    """One line per leaf failure of a cattrs validation error: ``<key path>: <what was expected>``."""
    if isinstance(error, ForbiddenExtraKeysError):
        return [
            f"{path}.{key}: unknown key.{_closest(key, _KEYS)} Valid keys: {', '.join(_KEYS)}."
            for key in sorted(error.extra_fields)
        ]
    if isinstance(error, ClassValidationError):
        with_notes, without = error.group_exceptions()
        lines: list[str] = []
        for sub, note in with_notes:
            lines += _problems(sub, f"{path}.{note.name}")
        for sub in without:
            lines += _problems(sub, path)
        return lines
    return [f"{path}: {_describe_error(error)}"]


# -- reading sources ----------------------------------------------------------------------


def find_config_file(start: str | os.PathLike[str] | None = None) -> Path | None:
    """The configuration file that applies in `start` (default: the current directory).

    Looks in `start` and then each parent directory for ``file_backed.toml``,
    then for a ``pyproject.toml`` that has a ``[tool.file_backed]`` table; the
    first found wins (a ``file_backed.toml`` beats a ``pyproject.toml`` in the
    same directory). Returns None when there is none. A ``pyproject.toml``
    that is not valid TOML is skipped, as it may belong to another tool.
    """
    directory = Path(start if start is not None else Path.cwd()).absolute()
    for folder in (directory, *directory.parents):
        candidate = folder / CONFIG_FILE
        if candidate.is_file():
            return candidate
        candidate = folder / PYPROJECT_FILE
        if candidate.is_file():
            try:
                document = tomllib.loads(candidate.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
                continue
            if isinstance(document.get("tool"), dict) and "file_backed" in document["tool"]:
                return candidate
    return None


def _read_file(path: Path) -> tuple[Any, str]:
    """The configuration table of `path` and a description of where it is."""
    pyproject = path.name == PYPROJECT_FILE
    table_name = "[tool.file_backed]" if pyproject else "[file_backed]"
    where = f"{path} {table_name}"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the configuration file: {error.strerror or error}") from error
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: the configuration file is not UTF-8 text: {error}") from error
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from error
    table: Any = document.get("tool", {}).get("file_backed") if pyproject else document.get("file_backed")
    if table is None:
        raise ConfigError(f"{path}: no {table_name} table. Put the configuration keys under {table_name}.")
    return table, where


def _read_source(source: str | os.PathLike[str] | Mapping[str, Any] | None) -> tuple[Any, str]:
    if isinstance(source, Mapping):
        return source, "<mapping>"
    if source is None:
        found = find_config_file()
        if found is None:
            return {}, "<defaults>"
        return _read_file(found)
    if not isinstance(source, str | os.PathLike):
        raise ConfigError(f"a configuration source is a path or a mapping, not {type(source).__name__}: {source!r}")
    path = Path(source).expanduser()
    if path.is_dir():
        for name in (CONFIG_FILE, PYPROJECT_FILE):
            if (path / name).is_file():
                return _read_file(path / name)
        raise ConfigError(f"{path}: the directory holds neither {CONFIG_FILE} nor {PYPROJECT_FILE}")
    if not path.exists():
        raise ConfigError(f"{path}: no such configuration file")
    return _read_file(path)


# -- checking names and options against what is installed ------------------------------------


def _check_name(kind: str, group: str, name: str, path: str) -> list[str]:
    names = sorted(installed(group))
    if name in names:
        return []
    closest = _closest(name, names)
    return [f"{path}: {kind} {name!r} is not installed.{closest} Installed {kind}s: {', '.join(names) or '(none)'}."]


def _check_loads(kind: str, load: Callable[[], Any], path: str) -> tuple[list[str], Any]:
    """The loaded plugin, or the problem (a missing optional dependency with its
    install command, a broken entry point) under `path`."""
    try:
        return [], load()
    except PluginNotFoundError as error:
        return [f"{path}: {error}"], None


def _check_options(what: str, target: Any, options: Mapping[str, Any], path: str) -> list[str]:
    """Problems of `options` against the keyword parameters of the callable `target`."""
    accepted = _parameters(target)
    if accepted is None:
        return []
    problems = [
        f"{path}.{name}: {what} has no option {name!r}.{_closest(name, accepted)} "
        f"It accepts: {', '.join(accepted) or 'no options'}."
        for name in sorted(set(options) - set(accepted))
    ]
    hints = declared_types(target)
    for name, value in options.items():
        expected = type_mismatch(value, hints[name]) if name in hints else None
        if expected is not None:
            shown = redacted(value, name)
            problems.append(f"{path}.{name}: {what} expects {expected} here, got {type(value).__name__} {shown!r}")
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):  # pragma: no cover - _parameters returned None already
        return problems
    for parameter in signature.parameters.values():
        required = parameter.default is parameter.empty and parameter.kind in (
            parameter.KEYWORD_ONLY,
            parameter.POSITIONAL_OR_KEYWORD,
        )
        if required and parameter.name not in ("self", "codec") and parameter.name not in options:
            problems.append(f"{path}.{parameter.name}: {what} needs the option {parameter.name!r}")
    return problems


def _check_installed(config: FileBackedConfig) -> list[str]:
    problems = _check_name("backend", BACKENDS_GROUP, config.backend, "$.backend")
    if not problems:
        load_problems, factory = _check_loads("backend", lambda: get_backend(config.backend), "$.backend")
        problems += load_problems or _check_options(f"backend {config.backend!r}", factory, config.options, "$.options")
    codec_problems = _check_name("codec", CODECS_GROUP, config.codec, "$.codec")
    if not codec_problems:
        codec_problems, codec = _check_loads("codec", lambda: get_codec(config.codec), "$.codec")
        codec_problems = codec_problems or _check_options(
            f"codec {config.codec!r}", codec, config.codec_options, "$.codec_options"
        )
    problems += codec_problems
    seen: set[str] = set()
    for index, name in enumerate(config.plugins):
        if name in seen:
            problems.append(f"$.plugins[{index}]: plugin {name!r} is listed twice")
        seen.add(name)
        problems += _check_name("plugin", PLUGINS_GROUP, name, f"$.plugins[{index}]")
    return problems


def _raise(where: str, problems: list[str]) -> NoReturn:
    raise ConfigError(f"invalid configuration in {where}:\n" + "\n".join(f"  {line}" for line in problems))


# -- public entry points -------------------------------------------------------------------


def load_config(source: str | os.PathLike[str] | Mapping[str, Any] | None = None) -> FileBackedConfig:
    """Read, structure and check a configuration.

    `source` is a path to a ``file_backed.toml`` (table ``[file_backed]``) or a
    ``pyproject.toml`` (table ``[tool.file_backed]``), a directory holding one,
    or a mapping of the table's keys. With None, `find_config_file` searches
    from the current directory upward; when nothing is found the defaults
    apply (``fs_hardlink`` in a new temporary directory, ``pickle``).

    Checks that the backend, codec and plugins are installed, and the keys of
    ``options``/``codec_options`` against the parameters of the backend
    factory and codec class (unless they accept any keyword). Raises
    `ConfigError` listing every problem found, one ``<key path>: <expected>``
    line each, after a line naming the source.
    """
    table, where = _read_source(source)
    if not isinstance(table, Mapping):
        _raise(where, [f"$: expected a table of configuration keys, got {type(table).__name__} {table!r}"])
    try:
        config = _CONVERTER.structure(table, FileBackedConfig)
    except (ClassValidationError, ForbiddenExtraKeysError) as error:
        _raise(where, _problems(error))
    config = attrs.evolve(config, source=where)
    problems = _check_installed(config)
    if problems:
        _raise(where, problems)
    return config


def open_pool(source: str | os.PathLike[str] | Mapping[str, Any] | FileBackedConfig | None = None) -> FBPool[Any]:
    """An `FBPool` on a store opened as `source` describes (see `load_config`).

    The store is opened with `file_backed.open_store`; close it with
    ``pool.store.close()`` (or ``with pool.store:``). A backend factory or
    codec that rejects an option value raises `ConfigError` naming the source
    and the ``$.options`` table.
    """
    from file_backed.codecs.base import Codec
    from file_backed.opening import make_codec, open_store
    from file_backed.pool import FBPool

    if isinstance(source, FileBackedConfig):
        config = source
        problems = _check_installed(config)
        if problems:
            _raise(config.source, problems)
    else:
        config = load_config(source)
    try:
        codec: Codec = make_codec(config.codec, dict(config.codec_options))
    except (TypeError, ValueError) as error:
        _raise(config.source, [f"$.codec_options: codec {config.codec!r} rejected its options: {error}"])
    try:
        store = open_store(
            config.backend, codec=codec, workers=config.workers, plugins=config.plugins, **config.options
        )
    except (TypeError, ValueError) as error:  # ConfigError is a ValueError
        _raise(config.source, [f"$.options: backend {config.backend!r} rejected its options: {error}"])
    return FBPool(store, max_items=config.max_items, max_bytes=config.max_bytes)
