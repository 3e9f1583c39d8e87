"""Finding offline wandb runs under outputs/ and refusing to upload without a key."""
from __future__ import annotations

import pytest

from factory.tracking import sync
from factory.errors import FactoryError


def _offline(run_dir, name):
    path = run_dir / "wandb" / f"offline-run-{name}"
    (path / "files").mkdir(parents=True)
    (path / f"run-{name[-8:]}.wandb").write_bytes(b":W&B")
    return path


@pytest.fixture
def outputs(tmp_path):
    root = tmp_path / "outputs"
    first = _offline(root / "fraud_detection" / "2026-01-01_00-00-00_aaaaaa", "20260101_000001-abcd1234")
    resumed = _offline(root / "fraud_detection" / "2026-01-01_00-00-00_aaaaaa", "20260101_010000-abcd1234")
    swept = _offline(root / "sweeps" / "s1" / "0" / "2026-01-02_00-00-00_bbbbbb", "20260102_000001-efgh5678")
    (root / "diagnosis" / "r" / "wandb" / "run-20260103_000000-online12").mkdir(parents=True)  # online: not ours
    (root / "diagnosis" / "r" / "wandb" / "offline-run-notadir").write_text("")
    return root, [first, resumed, swept]


def test_finds_every_offline_run_at_any_depth(outputs):
    root, runs = outputs
    assert sync.offline_runs([root]) == sorted(runs)


def test_accepts_task_run_and_offline_run_directories(outputs):
    root, (first, resumed, swept) = outputs
    assert sync.offline_runs([root / "fraud_detection"]) == [first, resumed]
    assert sync.offline_runs([swept, first.parent.parent]) == [first, resumed, swept]


def test_missing_path_is_named(tmp_path):
    with pytest.raises(FactoryError, match=f"{tmp_path / 'nope'}: no such directory"):
        sync.offline_runs([tmp_path / "nope"])


def test_one_wandb_sync_call_for_all_runs(outputs):
    root, runs = outputs
    command = sync.sync_command(sync.offline_runs([root]), project="team")
    assert command[1:5] == ["-m", "wandb", "sync", "--skip-synced"]
    assert command[5:7] == ["--project", "team"] and command[7:] == [str(r) for r in sorted(runs)]


@pytest.fixture
def no_key(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_IDENTITY_TOKEN_FILE", raising=False)
    monkeypatch.delenv("WANDB_BASE_URL", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    return tmp_path / "netrc"


def test_credentials_from_env_or_wandb_login_netrc(no_key, monkeypatch):
    assert not sync.has_credentials()
    no_key.write_text("machine api.wandb.ai\n  login user\n  password " + "k" * 40 + "\n")
    assert sync.has_credentials()
    no_key.unlink()
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    assert sync.has_credentials()


def test_sync_without_a_key_refuses_before_calling_wandb(no_key, outputs):
    root, runs = outputs
    with pytest.raises(FactoryError, match=r"needs an API key: set WANDB_API_KEY or run `wandb login` \(3 "):
        sync.sync(sync.offline_runs([root]))
    with pytest.raises(FactoryError, match="no offline wandb runs"):
        sync.sync([])
