"""One ``error:`` line for every config error, from jsonargparse's nested errors and the classes' checks.

jsonargparse reports a bad value inside ``model`` or ``data`` as a multi-line "Does not validate against
any of the Union subtypes" trace and a class's own check as a ``ValueError`` wrapped the same way. The
parts are all in the exception chain: every level names its key (``Parser key "data"`` ... ``Parser key
"batch_size"``), a subclass level its ``class_path``, and the innermost exception says what is wrong.
:class:`RLArgumentParser` turns that chain into a :class:`ConfigError` with the dotted field, and
:func:`instantiation_error` locates a class's check under its config section.
"""

from __future__ import annotations

import difflib
import re
import traceback
from argparse import ArgumentError
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

import yaml
from pytorch_lightning.cli import LightningArgumentParser

from lightning_rl.utils.checks import ConfigError

_KEY = re.compile(r'Parser key "([^"]+)"')
_UNKNOWN = re.compile(r"Option '([^']+)' is not accepted|does not accept option '([^']+)'")
_TYPE = re.compile(r"Expected a (.+?)\. Got value: (.*)", re.S)
_SKIPPED_KEYS = {"help", "config", "print_config", "__default_config__"}


class RLArgumentParser(LightningArgumentParser):
    """LightningCLI's parser that raises a one-line :class:`ConfigError` instead of printing its usage,
    and refuses abbreviated flags (``--evaluator.stop_val`` is not ``--evaluator.stop_value``)."""

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if not self.exit_on_error:  # a nested parser (a class's init_args): its caller reports the error
            try:
                super().error(message, ex)
            except ArgumentError as err:
                err.valid_keys = self._keys()  # type: ignore[attr-defined]  # for "did you mean"
                raise
        raise parse_error(message, ex, self._keys(), getattr(self, "args", None) or []) from ex

    def _keys(self) -> list[str]:
        return [a.dest for a in self._actions if a.dest not in _SKIPPED_KEYS and not a.dest.endswith(".help")]


def parse_error(message: str, ex: BaseException | None, keys: list[str], args: list[str]) -> ConfigError:
    """The :class:`ConfigError` of a jsonargparse parse error ``message`` / ``ex`` (``keys``: the
    parser's own, ``args``: the command line it parsed)."""
    if message.startswith("unrecognized arguments: "):
        flag = message.removeprefix("unrecognized arguments: ").split()[0].split("=")[0]
        return unknown_key(flag.lstrip("-"), keys)
    chain = _chain(ex)
    path: list[str] = []
    for link in chain:
        text = str(link)
        key = _KEY.match(text)
        if key and (not path or path[-1] != key[1]):
            path.append(key[1])
        elif text.startswith("Problem with given class_path"):
            path.append("init_args")
    leaf = chain[-1] if chain else None
    field = ".".join(path)
    leaf_text = str(leaf) if leaf is not None else message
    if isinstance(leaf, yaml.YAMLError):
        return _yaml_error(leaf, args)
    unknown = _UNKNOWN.search(leaf_text)
    if unknown:
        valid = next((v for link in chain if (v := getattr(link, "valid_keys", None))), [])
        return unknown_key(".".join([*path, unknown[1] or unknown[2]]), valid, relative=True)
    wrong_type = _TYPE.match(leaf_text)
    if wrong_type:
        allowed = _type_name(wrong_type[1])
        return ConfigError(
            f"{field}: got {wrong_type[2]!r}; allowed: {allowed}", field, f"got {wrong_type[2]!r}", allowed
        )
    first = leaf_text.strip().splitlines()[0] if leaf_text.strip() else message
    return ConfigError(f"{field}: {first}" if field else first, field or None, first)


def unknown_key(key: str, valid: list[str], relative: bool = False) -> ConfigError:
    """``key`` is not a config key: name it, the close valid ones and the keys of its section.

    ``valid`` are full dotted keys (``trainer.max_steps``), or with ``relative`` the keys of the
    section ``key`` is in (a class's init_args: ``lr``, ``gamma``)."""
    section, _, name = key.rpartition(".")
    if relative:
        siblings = sorted(valid)
    else:
        siblings = sorted({k.removeprefix(f"{section}.").split(".")[0] for k in valid if _in(k, section)})
    close = difflib.get_close_matches(name, siblings, n=3)
    problem = "unknown key" + (f" (did you mean {', '.join(close)}?)" if close else "")
    allowed = ", ".join(siblings) if siblings else None
    return ConfigError(f"{key}: {problem}", key, problem, allowed)


def _in(key: str, section: str) -> bool:
    return key.startswith(f"{section}.") if section else True


def _chain(ex: BaseException | None) -> list[BaseException]:
    """``ex`` and its causes, outermost first."""
    chain: list[BaseException] = []
    while ex is not None and ex not in chain:
        chain.append(ex)
        ex = ex.__cause__ or ex.__context__
    return chain


def _type_name(hint: str) -> str:
    """``<class 'int'>`` -> ``int``, ``typing.Literal['a', 'b']`` -> ``'a', 'b'``."""
    hint = re.sub(r"<class '(?:[\w.]+\.)?(\w+)'>", r"\1", hint)
    literal = re.fullmatch(r"typing\.Literal\[(.*)\]", hint)
    return literal[1] if literal else hint.replace("typing.", "")


def _yaml_error(err: yaml.YAMLError, args: list[str]) -> ConfigError:
    """A YAML syntax error, naming the ``--config`` file it is in and its line."""
    files = [v for flag, v in zip(args, args[1:], strict=False) if flag in ("--config", "-c")]
    files += [a.split("=", 1)[1] for a in args if a.startswith("--config=")]
    bad = next((f for f in files if _yaml_fails(f)), files[-1] if files else "config")
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = str(getattr(err, "problem", None) or err).splitlines()[0]
    return ConfigError(f"{bad}:{where}: invalid YAML: {problem}", bad, f"invalid YAML at{where}: {problem}")


def _yaml_fails(path: str) -> bool:
    try:
        yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError):
        return True
    return False


def instantiation_error(err: ValueError, sections: Mapping[str, type]) -> ConfigError:
    """The :class:`ConfigError` of a ``ValueError`` raised while the config's classes were built.

    ``sections`` maps a config prefix (``data.init_args.``) to the class built there; the innermost
    cause's traceback tells which one raised it (the outermost frame whose ``self`` is one of them)."""
    cause: BaseException = err
    while cause.__cause__ is not None:
        cause = cause.__cause__
    section = ""
    for frame, _ in traceback.walk_tb(cause.__traceback__):
        owner = frame.f_locals.get("self")
        section = next((p for p, cls in sections.items() if isinstance(owner, cls)), "")
        if section:
            break
    if isinstance(cause, ConfigError):
        return ConfigError(cause.line(section))
    first = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
    return ConfigError(f"{section.removesuffix('init_args.').rstrip('.')}: {first}" if section else first)
