"""Where a result came from: profile, seed, git commit and build time, carried by every page,
figure and shipped run so a number can be traced to the code that made it; and whether a result
derived from a run still holds (``derivation``, ``stale_reason``)."""

from __future__ import annotations

import ast
import copy
import datetime as dt
import functools
import hashlib
import importlib
import inspect
import json
import marshal
import os
import platform
import re
import subprocess
import sys
import sysconfig
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pggan_core.config import differing_keys
from pggan_core.paths import repo_root


def provenance(profile: str, seed: int, root: Path | None = None) -> dict[str, str]:
    """Profile, seed, git commit (with ``+dirty`` for local changes) and UTC build time."""
    built = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return {"profile": profile, "seed": str(seed), "commit": git_commit(root), "built": built}


def git_commit(root: Path | None = None, dirty: bool = True) -> str:
    """The checkout's short commit, with ``+dirty`` when ``dirty`` and tracked files differ
    from it; "unknown" outside a git checkout."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root or repo_root()), *args],
                              capture_output=True, text=True, check=True).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        if dirty and git("status", "--porcelain", "--untracked-files=no"):
            commit += "+dirty"
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit


def hardware() -> str:
    """The CPU and its widest vector extension, e.g. "AMD EPYC, 2 cores, AVX2 only"."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    model = re.search(r"model name\s*:\s*(.*)", text)
    cores = len(set(re.findall(r"^processor\s*:\s*(\d+)", text, re.M))) or 1
    isa = "AVX-512" if "avx512f" in text else "AVX2 only" if "avx2" in text else "no AVX2"
    cap = os.environ.get("ATEN_CPU_CAPABILITY")
    if cap:  # kernels capped below what the CPU has (to time an AVX2-only machine, say)
        isa += f", torch kernels capped at {cap}"
    name = model.group(1).strip() if model else platform.processor() or platform.machine()
    return f"{name}, {cores} cores, {isa}"


# ---------------------------------------------------------------------------------------------
# Results computed from a run's generator (metrics.json, encoder.pt/.json, latent_space.json,
# ablation.json, augmentation.json) each record a *derivation*: the generator's weights (SHA-256
# of its tensors), the config sections and other files read, and a hash of every piece of the
# project's code that ran (found by watching it run, so a new helper, a registered metric or
# architecture is covered unlisted). A result whose derivation no longer matches is computed
# again by whoever needs it, or refused with the command that rewrites it; mtimes say nothing.

# The config sections each kind of result reads.
SECTIONS: dict[str, tuple[str, ...]] = {
    "metrics": ("data", "vessels", "eval"),
    "encoder": ("model", "encoder"),
    "inversion": ("model", "inversion"),
    "latent_space": ("eval",),
    "ablation": ("data", "vessels", "eval"),
    # the augment settings are the study's own (``--set augment.KEY=V``), not the run's
    "augmentation": ("data", "vessels"),
}

_LIBRARIES = tuple({sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib",
                                                            "platlib")})
_PACKAGE = str(Path(__file__).parent)  # pggan_core, wherever it is installed
_PROMPTS = ("<stdin>", "<ipython-input")  # a notebook kernel's cells are files in /tmp
_recorders: list[set[str]] = []  # the ``code_that_ran`` blocks open now, innermost last
_unit_of: dict[Any, str | None] = {}  # code object -> "module:TopLevelName" (None: not ours)
_module_at: dict[str, str | None] = {}  # a file -> its module's name (None: no module's)
_prompt_code: dict[str, str] = {}  # code typed at a prompt or in a notebook cell -> its hash


def _unit(code: Any) -> str | None:
    """``module:TopLevelName`` of a code object of the project (or of a user's own module),
    None for the standard library and installed packages. Code typed at a prompt or in a
    notebook cell is ``<prompt>:name``, hashed as compiled: it holds in this session only."""
    filename = code.co_filename
    ours = filename.startswith(_PACKAGE)
    if filename == __file__ or (not ours and filename.startswith(_LIBRARIES)) or \
            (filename.startswith("<") and not filename.startswith(_PROMPTS)):
        return None  # ours to watch; "<string>": made by a library (a dataclass's __init__)
    if filename not in _module_at:  # a module imported since: look again
        _module_at.update({module.__file__: name for name, module in list(sys.modules.items())
                           if isinstance(getattr(module, "__file__", None), str)})
        _module_at.setdefault(filename, None)  # a notebook cell's file: not looked for again
    module = _module_at.get(filename)
    top = code.co_qualname.split(".")[0]
    if module is None:
        name = f"<prompt>:{top}"
        _prompt_code[name] = hashlib.sha256(marshal.dumps(code)).hexdigest()[:16]
        return name
    return module if top == "<module>" else f"{module}:{top}"


def _tracer(previous: Any) -> Any:
    """A trace function that records each call's unit and hands the event on to ``previous``
    (a debugger's or coverage's), so watching a computation changes nothing else."""
    def trace(frame: Any, event: str, arg: Any) -> Any:
        code = frame.f_code
        unit = _unit_of[code] if code in _unit_of else _unit_of.setdefault(code, _unit(code))
        if unit is not None:
            module = unit.partition(":")[0]
            for names in _recorders:
                names.add(unit)
                if module != "<prompt>":
                    names.add(module)  # the module's own constants and set-up
        return previous(frame, event, arg) if previous is not None else None
    return trace


@contextmanager
def code_that_ran() -> Iterator[set[str]]:
    """A set that fills with the project code called inside the block (``module`` and
    ``module:TopLevelName``, in this thread and threads started in it). Worker processes watch
    their own and send back what they saw."""
    names: set[str] = set()
    previous = sys.gettrace()
    _recorders.append(names)
    if len(_recorders) == 1:
        sys.settrace(_tracer(previous))
        threading.settrace(_tracer(previous))
    try:
        yield names
    finally:
        _recorders.remove(names)
        if not _recorders:
            sys.settrace(previous)
            threading.settrace(previous)  # type: ignore[arg-type]


def _without_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    first = body[0] if body else None
    is_docstring = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
        and isinstance(first.value.value, str)
    return body[1:] if is_docstring else body


@functools.cache
def _module_units(module_name: str) -> dict[str, str]:
    """Each top-level function and class of a module, and the module's other top-level
    statements (its constants and set-up), as normalised source: comments, docstrings and
    layout do not count, imports do not either (what they bring is recorded where it runs)."""
    module = importlib.import_module(module_name)
    tree = ast.parse(Path(inspect.getfile(module)).read_text())
    units, rest = {}, []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            stripped = copy.deepcopy(node)
            for inner in ast.walk(stripped):
                if isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    inner.body = _without_docstring(inner.body) or [ast.Pass()]
            units[f"{module_name}:{node.name}"] = ast.unparse(stripped)
        elif not isinstance(node, (ast.Import, ast.ImportFrom)):
            rest.append(node)
    units[module_name] = ast.unparse(ast.Module(body=_without_docstring(rest), type_ignores=[]))
    return units


def code_hashes(names: Iterable[str]) -> dict[str, str | None]:
    """A short hash of each unit's source as it is now (None when it no longer exists)."""
    hashes: dict[str, str | None] = {}
    for name in sorted(names):
        if name.startswith("<prompt>:"):
            hashes[name] = _prompt_code.get(name)
            continue
        try:
            source = _module_units(name.partition(":")[0]).get(name)
        except (ImportError, OSError, TypeError, SyntaxError):
            source = None
        hashes[name] = None if source is None else \
            hashlib.sha256(source.encode()).hexdigest()[:16]
    return hashes


def _sections(config: Any, kind: str) -> dict[str, Any]:
    """The config sections a ``kind`` result reads, as plain JSON values."""
    return json.loads(json.dumps({s: config.to_dict()[s] for s in SECTIONS[kind]},
                                 sort_keys=True))


def derivation(kind: str, generator_sha256: str, config: Any, code: Iterable[str],
               inputs: dict[str, str] | None = None) -> dict[str, Any]:
    """The derivation to store in a ``kind`` result (a key of ``SECTIONS``) computed from the
    generator ``generator_sha256`` under ``config`` by ``code`` (what ``code_that_ran`` saw);
    ``inputs``: other files of the run folder it read, with their SHA-256."""
    from pggan_core import __version__

    return {"kind": kind, "generator_sha256": generator_sha256, "code": code_hashes(code),
            "package_version": __version__, "config": _sections(config, kind),
            "inputs": dict(inputs or {})}


def stale_reason(saved: dict[str, Any] | None, kind: str, generator_sha256: str,
                 config: Any, inputs: dict[str, str] | None = None) -> str | None:
    """Why a result's ``saved`` derivation does not hold for the generator, config and
    ``inputs`` now (one without a derivation, or naming no code, never does); None if it does."""
    if not saved:
        return "it records no derivation (written before results recorded one)"
    if saved.get("generator_sha256") != generator_sha256:
        return "the run's generator weights differ from those it was computed from"
    if not isinstance(saved.get("code"), dict):
        return "it was recorded before results named the code that ran"
    changed = [name for name, digest in code_hashes(saved["code"]).items()
               if digest != saved["code"][name]]
    if changed:
        return f"the code that computes it changed: {', '.join(changed)}"
    keys = differing_keys(saved.get("config") or {}, _sections(config, kind))
    if keys:
        return f"the configuration differs in {', '.join(keys)}"
    other = sorted(name for name, digest in (inputs or {}).items()
                   if (saved.get("inputs") or {}).get(name) != digest)
    if other:
        return f"{', '.join(other)} changed since"
    return None


def reusable(record: Path, weights: Path, settings: dict[str, Any], kind: str,
             generator_sha256: str, config: Any, inputs: dict[str, str] | None = None
             ) -> dict[str, Any] | None:
    """The saved ``record`` (JSON) when the ``weights`` beside it were trained with ``settings``
    and its derivation still holds, so they are loaded instead of trained again; else None."""
    if not weights.is_file() or not record.is_file():
        return None
    saved = json.loads(record.read_text())
    if saved.get("settings") != json.loads(json.dumps(settings)):
        return None
    reason = stale_reason(saved.get("derivation"), kind, generator_sha256, config, inputs)
    return saved if reason is None else None
