"""The registry directory: an index of names and versions, a folder per version, an audit log.

Layout (``$FACTORY_REGISTRY``, else ``${FACTORY_ROOT:-.}/registry``)::

    index.json        name -> versions: stage, key metric, run id, created at/by (atomic writes)
    audit.jsonl       one JSON line per change: who, when, action, name, version, details;
                      hash-chained (factory.governance.audit), anchored by audit.head
    .lock             held around every read-modify-write of the index (filelock)
    <name>/v<N>/      model.ckpt (one file) and meta.json (what was registered; never rewritten);
                      profile.json and profile-sample.parquet when the run has a reference profile;
                      tokenizer.json for a language model (factory.registry.language);
                      later model.onnx, model.int8.onnx and exports.json (factory.registry.exports)
    .staging/         checkpoints being copied in, before they get a version number

Readers take no lock: the index is replaced by rename, so they see the state before or
after a change, never half of one. Writers serialize on the lock. A version number is
never reused: the next one is above both the index's counter and every ``v<N>`` folder
on disk, so a crash between moving a folder in and writing the index loses no number.
"""
from __future__ import annotations

import getpass
import json
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from factory import files
from factory.errors import FactoryError
from factory.governance import audit as chain

INDEX = "index.json"
AUDIT = "audit.jsonl"
LOCK = ".lock"
STAGING = ".staging"
CHECKPOINT = "model.ckpt"
METADATA = "meta.json"
STAGES = ("staging", "production", "archived")
UNSTAGED = "none"  # the stage of a version nobody has promoted yet
# Names become folder names and refs use '@': letters, digits, '.', '_', '-' only.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
#: Seconds a writer waits for another writer before giving up with an error.
LOCK_TIMEOUT_S = 120.0


def default_dir() -> Path:
    """``$FACTORY_REGISTRY``, else ``registry/`` under ``$FACTORY_ROOT`` (or the cwd)."""
    if os.environ.get("FACTORY_REGISTRY"):
        return Path(os.environ["FACTORY_REGISTRY"])
    return Path(os.environ.get("FACTORY_ROOT", ".")) / "registry"


def now() -> str:
    return files.utc_stamp("milliseconds")  # versions added within one second still order


def whoami() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container user without a passwd entry
        return f"uid {os.getuid()}"


def check_name(name: str) -> str:
    """``name`` if it can be a model name, else a ``FactoryError`` naming the rule."""
    if not NAME.fullmatch(name or ""):
        raise FactoryError(f"model name {name!r}: use letters, digits, '.', '_' and '-' "
                           "(starting with a letter or digit)")
    if name in (INDEX, AUDIT, chain.head_path(AUDIT).name):  # the registry's own files live beside the model folders
        raise FactoryError(f"model name {name!r}: reserved for the registry's own files")
    return name


@dataclass(frozen=True)
class ModelVersion:
    """One registered version, as the index lists it.

    Attributes:
        name: the model name.
        version: its number (1, 2, ... per name, never reused).
        stage: ``none``, ``staging``, ``production`` or ``archived``.
        created_at: UTC ISO time of registration; ``created_by``: the user.
        run_id: the run it came from.
        metric: the run's monitored metric: ``name``, ``mode``, ``val`` and ``test`` values.
        path: the version's folder (``model.ckpt``, ``meta.json``).
    """

    name: str
    version: int
    stage: str
    created_at: str
    created_by: str
    run_id: str
    metric: dict
    path: Path

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def checkpoint(self) -> Path:
        return self.path / CHECKPOINT

    def metadata(self) -> dict:
        """``meta.json`` (run, metrics, data, config, checkpoint) plus the current stage."""
        meta = json.loads((self.path / METADATA).read_text())
        return {**meta, "stage": self.stage}


def parse_ref(ref: str) -> tuple[str, int | str | None]:
    """``NAME`` (latest), ``NAME@3`` or ``NAME@production`` -> ``(name, 3 | stage | None)``."""
    name, _, selector = str(ref).partition("@")
    check_name(name)
    if not selector or selector == "latest":
        return name, None
    if selector.removeprefix("v").isdigit():
        return name, int(selector.removeprefix("v"))
    if selector in STAGES:
        return name, selector
    raise FactoryError(f"model reference {ref!r}: after '@' comes a version number, 'latest' "
                       f"or a stage ({', '.join(STAGES)})")


class Registry:
    """A registry directory (see the module docstring for its layout).

    Args:
        root: the directory; default ``default_dir()``. Created on the first write.
        lock_timeout: seconds to wait for another writer.
    """

    def __init__(self, root: str | Path | None = None, lock_timeout: float = LOCK_TIMEOUT_S):
        self.root = Path(root) if root is not None else default_dir()
        self.lock_timeout = lock_timeout

    # Reading: no lock, the index is only ever replaced whole.

    def versions(self, name: str | None = None) -> list[ModelVersion]:
        """Every version (of ``name``, or of every model), by name then version."""
        models = self._index()["models"]
        if name is not None:
            self._model(models, name)  # an unknown name is an error, not an empty list
        return [self._version(n, int(v), entry) for n in sorted(models) if name in (None, n)
                for v, entry in sorted(models[n]["versions"].items(), key=lambda kv: int(kv[0]))]

    def get(self, ref: str) -> ModelVersion:
        """Resolve ``NAME``, ``NAME@VERSION`` or ``NAME@STAGE`` (newest version in that stage).

        Raises:
            FactoryError: unknown name, version or stage, naming what exists.
        """
        name, selector = parse_ref(ref)
        model = self._model(self._index()["models"], name)
        versions = {int(v): entry for v, entry in model["versions"].items()}
        if selector is None:
            version = max(versions)
        elif isinstance(selector, int):
            if selector not in versions:
                raise FactoryError(f"model {name!r} has no version {selector} (versions: "
                                   f"{', '.join(map(str, sorted(versions)))})")
            version = selector
        else:
            staged = [v for v, entry in versions.items() if entry["stage"] == selector]
            if not staged:
                raise FactoryError(f"model {name!r} has no version in {selector} (stages: " + ", ".join(
                    f"v{v} {versions[v]['stage']}" for v in sorted(versions)) + ")")
            version = max(staged)
        return self._version(name, version, versions[version])

    def audit(self) -> list[dict]:
        """The audit log, oldest first: ``who``, ``when``, ``action``, ``name``, ``version``, ``details``.

        Without the chain's ``prev``/``hash``; a torn last line (a writer killed mid-line) is
        skipped. ``scripts/audit.py verify`` checks the chain.
        """
        return chain.read(self.root / AUDIT)

    # Writing: every read-modify-write of the index holds the lock.

    def add(self, name: str, staged: Path, metadata: dict, metric: dict) -> ModelVersion:
        """Give a staged folder (holding ``model.ckpt``) the next version number of ``name``.

        Args:
            name: the model name.
            staged: a folder under ``<root>/.staging`` (same filesystem: the move is a rename).
            metadata: what ``meta.json`` records besides name, version, created at/by.
            metric: the key metric the index lists.
        """
        check_name(name)
        with self._locked() as index:
            model = index["models"].setdefault(name, {"next_version": 1, "versions": {}})
            version = max(model["next_version"], self._highest_folder(name) + 1)
            target = self.root / name / f"v{version}"
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(staged, target)
            entry = {"stage": UNSTAGED, "created_at": now(), "created_by": whoami(),
                     "run_id": metadata.get("run_id"), "metric": metric}
            files.write_json(target / METADATA, {"name": name, "version": version, "created_at": entry["created_at"],
                                                  "created_by": entry["created_by"], **metadata})
            model["versions"][str(version)] = entry
            model["next_version"] = version + 1
            # The audit line first: a crash between the two leaves a change logged, never one unlogged.
            try:
                self._log("register", name, version, {"run_id": metadata.get("run_id"),
                                                      "run_dir": metadata.get("run_dir"),
                                                      "source": (metadata.get("checkpoint") or {}).get("source")})
            except Exception:  # refused (the log no longer matches its anchor): no version folder left behind
                (target / METADATA).unlink(missing_ok=True)
                os.rename(target, staged)
                raise
            self._write_index(index)
        return self._version(name, version, entry)

    def promote(self, name: str, version: int, stage: str) -> list[tuple[int, str, str]]:
        """Move ``name`` v``version`` to ``stage``; a new production version archives the old one.

        Returns:
            The changes made, as ``(version, from_stage, to_stage)``; empty when the
            version already was in ``stage``.

        Raises:
            FactoryError: an unknown stage, name or version.
        """
        if stage not in STAGES:
            raise FactoryError(f"stage {stage!r}: expected one of {', '.join(STAGES)}")
        with self._locked() as index:
            versions = self._model(index["models"], name)["versions"]
            if str(version) not in versions:
                raise FactoryError(f"model {name!r} has no version {version} (versions: "
                                   f"{', '.join(sorted(versions, key=int))})")
            entry = versions[str(version)]
            if entry["stage"] == stage:
                return []
            changes = [(version, entry["stage"], stage)]
            if stage == "production":  # at most one production version per name
                changes += [(int(v), "production", "archived") for v, other in versions.items()
                            if other["stage"] == "production"]
            at = now()
            for v, _, to in changes:
                versions[str(v)].update(stage=to, stage_changed_at=at)
            for v, before, to in changes:  # logged before the index is written, as in add()
                details = {"from": before, "to": to}
                if v != version:
                    details["reason"] = f"v{version} promoted to production"
                self._log("promote" if v == version else "archive", name, v, details)
            self._write_index(index)
        return changes

    def attach(self, version: ModelVersion, staged: dict[str, Path], manifest: str,
               update: Callable[[dict], dict], details: dict, action: str = "export") -> dict:
        """Move files made after registration (exported graphs) into a version's folder, with their manifest.

        ``meta.json`` stays as registered; ``manifest`` (a JSON file in the folder) says what
        the attached files are. Under the lock: the files are renamed in, the audit line is
        written, then the manifest is replaced by ``update(current manifest)``.

        Args:
            version: the version (its folder must exist).
            staged: file name in the folder -> a staged file on the registry's filesystem.
            manifest: the manifest's file name; ``update`` gets its content ({} if absent).
            details: the audit entry's details.

        Returns:
            The manifest as written.
        """
        with self._locked() as index:
            versions = self._model(index["models"], version.name)["versions"]
            if str(version.version) not in versions or not version.path.is_dir():
                raise FactoryError(f"{version.ref}: no such version folder {version.path}")
            path = version.path / manifest
            current = json.loads(path.read_text()) if path.is_file() else {}
            for name, source in staged.items():
                os.replace(source, version.path / name)
            self._log(action, version.name, version.version, details)
            content = update(current)
            files.write_json(path, content)
        return content

    def log_gate(self, name: str, version: int, promote: bool, details: dict) -> dict:
        """Append a promotion gate's decision on ``name`` v``version`` to the audit log: action
        ``gate_promote`` or ``gate_keep`` (``factory.monitoring.gate``). The gate's own promotion,
        if any, comes first as a ``promote`` entry: the gate line records what happened. Returns
        the entry as written.

        Raises:
            FactoryError: an unknown name or version.
        """
        action = "gate_promote" if promote else "gate_keep"
        with self._locked() as index:
            versions = self._model(index["models"], name)["versions"]
            if str(version) not in versions:
                raise FactoryError(f"model {name!r} has no version {version} (versions: "
                                   f"{', '.join(sorted(versions, key=int))})")
            return self._log(action, name, version, details)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the writers' lock: a reader that must not see a writer between two steps waits here."""
        with self._locked():
            yield

    # Internals

    @contextmanager
    def _locked(self) -> Iterator[dict]:
        try:  # mode 0o666: every user of a shared registry takes it
            lock = files.lock(self.root / LOCK, self.lock_timeout, mode=0o666)
        except TimeoutError:
            raise FactoryError(f"registry {self.root}: another writer has held {LOCK} for over "
                               f"{self.lock_timeout:g} s; try again") from None
        try:
            yield self._index()  # read inside the lock: no other writer's change is lost
        finally:
            lock.release()

    def _index(self) -> dict:
        path = self.root / INDEX
        if not path.is_file():
            return {"format": 1, "models": {}}
        try:
            return json.loads(path.read_text())
        except ValueError as e:
            raise FactoryError(f"registry index {path} is not valid JSON ({e})") from None

    def _write_index(self, index: dict) -> None:
        files.write_json(self.root / INDEX, index)

    def _log(self, action: str, name: str, version: int, details: dict) -> dict:
        entry = {"who": whoami(), "when": now(), "action": action, "name": name, "version": version,
                 "details": details}
        chain.append(self.root / AUDIT, entry)  # hash-chained, fsynced; also under its own lock
        return entry

    def _model(self, models: dict, name: str) -> dict:
        if name not in models:
            known = ", ".join(sorted(models)) or "none yet"
            raise FactoryError(f"registry {self.root}: no model named {name!r} (models: {known})")
        return models[name]

    def _highest_folder(self, name: str) -> int:
        folder = self.root / name
        numbers = [int(p.name[1:]) for p in folder.glob("v*") if p.name[1:].isdigit()] if folder.is_dir() else []
        return max(numbers, default=0)

    def _version(self, name: str, version: int, entry: dict) -> ModelVersion:
        return ModelVersion(name, version, entry["stage"], entry["created_at"], entry["created_by"],
                            entry.get("run_id") or "", entry.get("metric") or {}, self.root / name / f"v{version}")
