"""Access policy, identity and the read log, on real policy files."""
from __future__ import annotations

import pytest

from factory.errors import AccessError, DataError, FactoryError
from factory.governance import access, audit

POLICY = """
roles:
  analyst:
    classifications: [internal]
    datasets: [fraud_restricted]
  auditor:
    classifications: [internal, restricted]
users:
  alice: [analyst]
  root-auditor: [auditor]
default_roles: []
"""


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    for name in (access.POLICY_ENV, access.AUDIT_ENV, access.USER_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FACTORY_ROOT", str(tmp_path))


@pytest.fixture
def policy(tmp_path):
    path = tmp_path / "governance" / "policy.yaml"
    path.parent.mkdir()
    path.write_text(POLICY)
    return path


def test_public_needs_no_policy_and_no_grant(tmp_path):
    access.authorize("iris", "public", identity="nobody")  # no policy file exists
    assert not (tmp_path / "governance").exists()  # nothing logged for public data


def test_granted_by_classification(policy):
    access.authorize("churn", "internal", identity="alice")
    access.authorize("churn", "restricted", identity="root-auditor")


def test_granted_by_dataset(policy):
    access.authorize("fraud_restricted", "restricted", identity="alice")


def test_refused_with_one_line_naming_the_dataset_and_the_missing_permission(policy, tmp_path):
    with pytest.raises(AccessError) as refused:
        access.authorize("payroll", "restricted", identity="alice")
    message = str(refused.value)
    assert "\n" not in message and isinstance(refused.value, FactoryError)
    assert message == (f"alice may not read dataset 'payroll' (restricted): no role grants it; it needs a role in "
                       f"{policy} granting classification 'restricted' or dataset 'payroll' (alice's roles: analyst)")
    denied = audit.read(access.audit_path())  # the refusal is on record
    assert [(e["action"], e["who"], e["dataset"]) for e in denied] == [("deny", "alice", "payroll")]
    assert audit.verify(tmp_path / "governance" / "audit.jsonl") is None


def test_a_role_grants_exactly_what_it_lists(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text("roles: {secret: {classifications: [restricted]}}\nusers: {bob: [secret]}\n")
    access.authorize("x", "restricted", identity="bob", policy=path)
    with pytest.raises(AccessError, match=r"bob may not read dataset 'x' \(internal\)"):
        access.authorize("x", "internal", identity="bob", policy=path)


def test_default_roles_apply_to_everyone(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text("roles: {staff: {classifications: [internal]}}\ndefault_roles: [staff]\n")
    access.authorize("churn", "internal", identity="anyone", policy=path)


def test_without_a_policy_file_only_public_data_is_readable(tmp_path):
    with pytest.raises(AccessError, match=r"there is no policy file at .*governance/policy.yaml"):
        access.authorize("churn", "internal", identity="alice")


def test_policy_from_the_environment(tmp_path, monkeypatch, policy):
    moved = tmp_path / "elsewhere.yaml"
    moved.write_text(POLICY)
    policy.unlink()
    monkeypatch.setenv(access.POLICY_ENV, str(moved))
    access.authorize("churn", "internal", identity="alice")


@pytest.mark.parametrize("text, key", [
    ("roles: {a: {classifications: [secret]}}", "roles.a.classifications: 'secret' is not one of"),
    ("roles: {a: {datasets: x, tables: [y]}}", "roles.a.tables: unknown key"),
    ("roles: {a: {}}\nusers: {alice: [b]}", "users.alice: unknown role 'b' (roles: a)"),
    ("roles: {a: {}}\ngroups: {}", "groups: unknown key"),
    ("roles: [a, b]", "roles: expected a mapping"),
    ("roles: {a: {classifications: {x: 1}}}", "roles.a.classifications: expected a list of names"),
    ("roles: {a: [\n", "not valid YAML at line"),
])
def test_a_malformed_policy_is_one_line_naming_the_file_and_the_key(tmp_path, text, key):
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(DataError) as bad:
        access.authorize("churn", "internal", identity="alice", policy=path)
    assert str(bad.value).startswith(f"access policy {path}: ") and key in str(bad.value)
    assert "\n" not in str(bad.value)


def test_an_unknown_classification_is_refused(tmp_path):
    with pytest.raises(DataError, match="classification 'secret' is not one of public, internal, restricted"):
        access.authorize("x", "secret", identity="alice")


def test_identity_from_factory_user_else_the_os_user(monkeypatch):
    assert access.identity() == access.os_user()
    monkeypatch.setenv(access.USER_ENV, "carol")
    assert access.identity() == "carol" and access.identity("dave") == "dave"


def test_record_read_appends_a_chained_entry(tmp_path, monkeypatch):
    monkeypatch.setenv(access.USER_ENV, "carol")
    access.record_read("fraud", "restricted", "ab12", "run-1")
    log = tmp_path / "governance" / "audit.jsonl"
    [entry] = audit.read(log)
    assert {k: entry[k] for k in ("who", "os_user", "action", "dataset", "classification", "snapshot", "run_id")} == {
        "who": "carol", "os_user": access.os_user(), "action": "read", "dataset": "fraud",
        "classification": "restricted", "snapshot": "ab12", "run_id": "run-1"}
    assert entry["when"].endswith("+00:00") and audit.verify(log) is None
    monkeypatch.setenv(access.AUDIT_ENV, str(tmp_path / "other.jsonl"))
    access.record_read("fraud", "restricted", "ab12", None)
    assert len(audit.read(tmp_path / "other.jsonl")) == 1
