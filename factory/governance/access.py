"""Who may read a governed dataset: a policy file of roles, an identity, and a read log.

The policy (``$FACTORY_POLICY``, else ``<FACTORY_ROOT or .>/governance/policy.yaml``)::

    roles:
      analyst:                              # a role grants classifications and/or datasets
        classifications: [internal]         # every dataset of these classifications
        datasets: [fraud_restricted]        # these datasets, whatever their classification
    users:
      alice: [analyst]                      # identity -> roles
    default_roles: []                       # roles every identity has, listed or not
    datasets:                               # optional: datasets' classifications, whatever a reader's
      fraud_restricted: restricted          #   config says (the stricter of the two applies)

``public`` data is always readable. ``internal`` and ``restricted`` data need a role that grants
the classification or the dataset; a role grants exactly what it lists (``restricted`` does not
imply ``internal``). Without a policy file only public data is readable: access is granted,
never assumed. A dataset the policy classifies is read at the stricter of that and the reader's
declared classification, so ``data.curation.classification=public`` on a command line does not
skip the check. The identity is ``$FACTORY_USER`` (or a configured one), else the OS user; it is
asserted, not authenticated, so the audit log records the OS user beside it.
"""
from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field
from pathlib import Path

from factory import files
from factory.errors import AccessError, DataError

CLASSIFICATIONS = ("public", "internal", "restricted")
POLICY_ENV = "FACTORY_POLICY"
AUDIT_ENV = "FACTORY_AUDIT_LOG"
USER_ENV = "FACTORY_USER"
_KEYS = {"roles", "users", "default_roles", "datasets"}
_ROLE_KEYS = {"classifications", "datasets"}


def governance_dir() -> Path:
    """``<FACTORY_ROOT or .>/governance``: the policy and the read log live here."""
    return Path(os.environ.get("FACTORY_ROOT", ".")) / "governance"


def policy_path(policy: str | os.PathLike | None = None) -> Path:
    """``policy`` if given, else ``$FACTORY_POLICY``, else ``governance_dir()/policy.yaml``."""
    if policy is not None:
        return Path(policy)
    if os.environ.get(POLICY_ENV):
        return Path(os.environ[POLICY_ENV])
    return governance_dir() / "policy.yaml"


def audit_path() -> Path:
    """The read log: ``$FACTORY_AUDIT_LOG``, else ``governance_dir()/audit.jsonl``."""
    if os.environ.get(AUDIT_ENV):
        return Path(os.environ[AUDIT_ENV])
    return governance_dir() / "audit.jsonl"


def os_user() -> str:
    """The operating-system account running this process."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container user without a passwd entry
        return f"uid {os.getuid()}"


def identity(configured: str | None = None) -> str:
    """Who is reading: ``configured`` if given, else ``$FACTORY_USER``, else the OS user."""
    return configured or os.environ.get(USER_ENV) or os_user()


@dataclass(frozen=True)
class Policy:
    """A parsed policy file: role -> granted classifications and datasets, user -> roles."""

    path: Path
    roles: dict[str, dict[str, frozenset]] = field(default_factory=dict)
    users: dict[str, tuple[str, ...]] = field(default_factory=dict)
    default_roles: tuple[str, ...] = ()
    exists: bool = True
    datasets: dict[str, str] = field(default_factory=dict)  # dataset -> its classification

    def roles_of(self, who: str) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.default_roles + self.users.get(who, ())))

    def grants(self, who: str, dataset: str, classification: str) -> list[str]:
        """The roles of ``who`` that let them read ``dataset`` (empty: none)."""
        return [role for role in self.roles_of(who)
                if classification in self.roles[role]["classifications"] or dataset in self.roles[role]["datasets"]]


def load_policy(policy: str | os.PathLike | None = None) -> Policy:
    """Read and check the policy file (``policy_path(policy)``); a missing file is an empty policy.

    Raises:
        DataError: one line naming the file and the key that is wrong.
    """
    import yaml  # PyYAML: OmegaConf's own dependency

    path = policy_path(policy)
    if not path.is_file():
        if policy is not None:
            raise DataError(f"access policy {path}: no such file")
        return Policy(path, exists=False)
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise DataError(f"access policy {path}: not valid YAML{at} ({getattr(e, 'problem', None) or e})") from None
    except OSError as e:
        raise DataError(f"access policy {path}: cannot read it ({e.strerror})") from None

    def bad(key: str, why: str) -> DataError:
        return DataError(f"access policy {path}: {key}: {why}")

    if not isinstance(doc, dict):
        raise bad("(top level)", f"expected a mapping with {', '.join(sorted(_KEYS))}")
    if unknown := sorted(set(map(str, doc)) - _KEYS):
        raise bad(unknown[0], f"unknown key (expected {', '.join(sorted(_KEYS))})")
    roles: dict[str, dict[str, frozenset]] = {}
    raw_roles = doc.get("roles") or {}
    if not isinstance(raw_roles, dict):
        raise bad("roles", "expected a mapping of role name -> {classifications, datasets}")
    for name, grant in raw_roles.items():
        grant = grant or {}
        if not isinstance(grant, dict):
            raise bad(f"roles.{name}", "expected a mapping with classifications and/or datasets")
        if unknown := sorted(set(map(str, grant)) - _ROLE_KEYS):
            raise bad(f"roles.{name}.{unknown[0]}", "unknown key (expected classifications, datasets)")
        classes = _names(grant.get("classifications"), bad, f"roles.{name}.classifications")
        for c in classes:
            if c not in CLASSIFICATIONS:
                raise bad(f"roles.{name}.classifications", f"{c!r} is not one of {', '.join(CLASSIFICATIONS)}")
        roles[str(name)] = {"classifications": frozenset(classes),
                            "datasets": frozenset(_names(grant.get("datasets"), bad, f"roles.{name}.datasets"))}

    def known(names: list[str], key: str) -> tuple[str, ...]:
        for role in names:
            if role not in roles:
                raise bad(key, f"unknown role {role!r} (roles: {', '.join(sorted(roles)) or 'none'})")
        return tuple(names)

    raw_users = doc.get("users") or {}
    if not isinstance(raw_users, dict):
        raise bad("users", "expected a mapping of identity -> list of roles")
    users = {str(who): known(_names(names, bad, f"users.{who}"), f"users.{who}") for who, names in raw_users.items()}
    default = known(_names(doc.get("default_roles"), bad, "default_roles"), "default_roles")
    raw_datasets = doc.get("datasets") or {}
    if not isinstance(raw_datasets, dict):
        raise bad("datasets", "expected a mapping of dataset -> classification")
    for name, level in raw_datasets.items():
        if level not in CLASSIFICATIONS:
            raise bad(f"datasets.{name}", f"{level!r} is not one of {', '.join(CLASSIFICATIONS)}")
    return Policy(path, roles, users, default, datasets={str(k): v for k, v in raw_datasets.items()})


def _names(value, bad, key: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value):
        raise bad(key, "expected a list of names")
    return [str(v) for v in value]


def check_classification(dataset: str, classification: str) -> str:
    if classification not in CLASSIFICATIONS:
        raise DataError(f"dataset {dataset!r}: classification {classification!r} is not one of "
                        f"{', '.join(CLASSIFICATIONS)}")
    return classification


def stricter(a: str, b: str) -> str:
    """The stricter of two classifications (``restricted`` > ``internal`` > ``public``)."""
    return max(a, b, key=CLASSIFICATIONS.index)


def effective(dataset: str, classification: str, policy: str | os.PathLike | None = None) -> str:
    """``dataset``'s classification: the stricter of the declared one and the policy file's
    ``datasets`` entry, if any (a reader cannot declare a dataset less sensitive than the policy does).

    Raises:
        DataError: an unknown classification or a malformed policy file.
    """
    check_classification(dataset, classification)
    return stricter(classification, load_policy(policy).datasets.get(dataset, "public"))


def authorize(dataset: str, classification: str, identity: str | None = None,
              policy: str | os.PathLike | None = None) -> str:
    """Raise ``AccessError`` unless ``identity`` may read ``dataset``; call it before reading a byte.

    Public data needs no grant. The classification checked is ``effective(dataset, classification)``
    (the policy's, when stricter), and is returned. A refusal is also appended to the read log
    (action ``deny``).

    Raises:
        AccessError: one line naming who, the dataset, its classification and what would grant it.
        DataError: an unknown classification or a malformed policy file.
    """
    rules = load_policy(policy)
    classification = stricter(check_classification(dataset, classification), rules.datasets.get(dataset, "public"))
    if classification == "public":
        return classification
    who = _identity(identity)
    if rules.grants(who, dataset, classification):
        return classification
    if not rules.exists:
        missing = f"there is no policy file at {rules.path} (set ${POLICY_ENV} or create it)"
    else:
        roles = ", ".join(rules.roles_of(who)) or "none"
        missing = (f"it needs a role in {rules.path} granting classification {classification!r} or "
                   f"dataset {dataset!r} ({who}'s roles: {roles})")
    try:  # a refused attempt is worth recording too; failing to record it must not hide the refusal
        _log("deny", dataset, classification, None, os.environ.get("FACTORY_RUN_ID"), who)
    except (OSError, DataError):
        pass
    raise AccessError(f"{who} may not read dataset {dataset!r} ({classification}): no role grants it; {missing}")


def record_read(dataset: str, classification: str, snapshot: str | None, run_id: str | None,
                identity: str | None = None, purpose: str | None = None) -> None:
    """Append a ``read`` entry (who, OS user, when, dataset, classification, snapshot, run, and
    ``purpose`` when given, e.g. ``score``) to the read log (``audit_path()``), hash-chained by
    ``factory.governance.audit``."""
    check_classification(dataset, classification)
    _log("read", dataset, classification, snapshot, run_id, _identity(identity), purpose)


def _identity(configured: str | None) -> str:  # the functions' ``identity`` argument hides ``identity()``
    return identity(configured)


def _log(action: str, dataset: str, classification: str, snapshot: str | None, run_id: str | None,
         who: str, purpose: str | None = None) -> dict:
    from factory.governance import audit

    entry = {"when": files.utc_stamp("milliseconds"), "who": who, "os_user": os_user(), "action": action,
             "dataset": dataset, "classification": classification, "snapshot": snapshot, "run_id": run_id}
    if purpose:
        entry["purpose"] = purpose
    return audit.append(audit_path(), entry)
