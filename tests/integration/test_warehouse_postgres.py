"""data=warehouse against a real PostgreSQL server: pushdown, training, and the documented failures.

The server is Debian's ``postgresql`` package (installed with apt-get when missing and this
process may: root, or sudo without a password; else the tests skip with the reason), run by
an unprivileged user (``postgres`` when the tests run as root: initdb refuses root) from a
temporary directory on a free loopback port, password (SCRAM) authentication only.
Measured here (2 shared cores): initdb 0.5 s, start 0.1 s, table load 1 s; each run of
scripts/train.py ~5 s of CPU (one training run, three failing ones). This kind of machine
ships postgresql-15; where it is missing, apt-get update 3 s + fetching and unpacking its
14 packages (56 MB) ~10 s, with configuration ~30 s in all.
"""
from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow.compute as pc
import pytest

from factory.data.sources import FraudSource, WarehouseSource
from factory.errors import DataError
from tests.conftest import REPO, script_env

pytestmark = pytest.mark.slow
pytest.importorskip("psycopg", reason="the postgres extra is needed: pip install -e '.[dev]'")
pytest.importorskip("adbc_driver_postgresql", reason="the postgres extra is needed: pip install -e '.[dev]'")

PASSWORD = "pg-s3cret-42"
ROWS = 3000
FEATURES = ["amount", "hour", "channel", "merchant_category"]


def _bindir() -> Path | None:
    """The newest installed server's bin directory (Debian keeps initdb off PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


def _install() -> None:
    """``apt-get install postgresql`` as root, or through passwordless sudo; else skip."""
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    if not shutil.which("apt-get") or (sudo and not shutil.which("sudo")):
        pytest.skip("PostgreSQL is needed: install Debian's `postgresql` package (apt-get install postgresql)")
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "postgresql"]):
        done = subprocess.run([*sudo, *command], capture_output=True, text=True, timeout=600,
                              env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        if done.returncode != 0:
            pytest.skip(f"`{' '.join(command)}` failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    """A running server with table ``transactions`` (the fraud generator's rows); yields its URL's
    ``(host:port, table)``. Stopped and removed after the module."""
    bindir = _bindir()
    if bindir is None:
        _install()
        bindir = _bindir() or pytest.skip("apt-get installed postgresql, but no /usr/lib/postgresql/*/bin/initdb")
    as_user: list[str] = []
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")  # the package's system user
        except KeyError:
            pytest.skip("running as root and there is no `postgres` user to run the server as")
        as_user = ["runuser", "-u", "postgres", "--"]
    # Not pytest's tmp_path: that is 0700 under root's name, and the server's user must reach it.
    root = Path(tempfile.mkdtemp(prefix="factory-pg-"))
    if as_user:
        os.chown(root, owner.pw_uid, owner.pw_gid)
    (root / "pw").write_text(PASSWORD + "\n")
    os.chmod(root / "pw", 0o644)
    data, port = root / "data", _free_port()

    def pg(*args: str) -> None:
        subprocess.run([*as_user, *args], check=True, capture_output=True, timeout=60)

    pg(str(bindir / "initdb"), "-D", str(data), "-U", "factory", f"--pwfile={root / 'pw'}",
       "--auth=scram-sha-256", "--no-sync", "-E", "UTF8", "--locale=C")
    # A throwaway server: no fsync; its socket in its own directory, not /var/run/postgresql.
    options = f"-p {port} -c listen_addresses=127.0.0.1 -k {root} -c fsync=off -c full_page_writes=off"
    pg(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-w", "-t", "30",
       "-o", options, "start")
    try:
        import adbc_driver_postgresql.dbapi as adbc

        table = FraudSource(rows=ROWS, seed=3).load().table
        with adbc.connect(f"postgresql://factory:{PASSWORD}@127.0.0.1:{port}/postgres") as con:
            with con.cursor() as cursor:
                cursor.adbc_ingest("transactions", table, mode="create")
                cursor.execute("CREATE VIEW priced AS SELECT amount::numeric(12, 2) AS price, is_fraud FROM transactions")
            con.commit()
        yield f"127.0.0.1:{port}", table
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def _url(host: str, password: str = PASSWORD, scheme: str = "postgresql") -> str:
    return f"{scheme}://factory:{password}@{host}/postgres"


def test_pushdown_through_adbc_and_psycopg_and_a_bad_filter(server):
    host, table = server
    online = table.filter(pc.equal(table["channel"], "online"))
    for scheme in ("postgresql", "postgresql+psycopg"):  # ADBC's Arrow, SQLAlchemy + psycopg
        source = WarehouseSource(_url(host, scheme=scheme), "SELECT * FROM transactions", "is_fraud",
                                 features=FEATURES, filter="channel = 'online'")
        loaded = source.load().table
        assert loaded.column_names == [*FEATURES, "is_fraud"] and loaded.num_rows == online.num_rows
        assert loaded["amount"].to_pylist() == online["amount"].to_pylist()
    # The server's plan: the scan outputs only the selected columns and applies the filter itself.
    import psycopg

    with psycopg.connect(_url(host)) as con:
        sql = source.select(['"amount"', '"is_fraud"'])
        plan = "\n".join(row[0] for row in con.execute(f"EXPLAIN (VERBOSE) {sql}"))
    assert "Seq Scan on public.transactions" in plan and "Filter: (transactions.channel = 'online'::text)" in plan
    assert "Output: transactions.amount, transactions.is_fraud" in plan
    bad_filter = WarehouseSource(_url(host), "SELECT * FROM transactions", "is_fraud", filter="chanel = 'online'")
    with pytest.raises(DataError, match=r"^cannot query postgresql://factory:\*\*\*@.*: data\.source\.filter"
                       r" \"chanel = 'online'\" failed: .*column \"chanel\" does not exist"):
        bad_filter.load()
    numeric = WarehouseSource(_url(host), "SELECT * FROM priced", "is_fraud", filter="price < 100").load()
    assert numeric.table["price"].type == "double" and numeric.table.num_rows > 0


def _train(tmp_path: Path, url: str, *overrides: str) -> subprocess.CompletedProcess:
    env = {**script_env(tmp_path), "PG_PASSWORD": PASSWORD}
    command = [sys.executable, str(REPO / "scripts" / "train.py"), "data=warehouse", f"data.source.url={url}",
               "logger=csv", "trainer.max_epochs=1", "data.batch_size=512", *overrides]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)


def test_train_on_postgres_with_the_password_from_the_environment(server, tmp_path):
    host, _ = server
    result = _train(tmp_path, f"postgresql://factory:${{oc.env:PG_PASSWORD}}@{host}/postgres",
                    f"data.source.features=[{','.join(FEATURES)}]", "data.source.filter=\"channel = 'online'\"")
    assert result.returncode == 0, result.stderr[-3000:]
    (manifest,) = (tmp_path / "outputs").rglob("run.json")
    assert json.loads(manifest.read_text())["status"] == "completed"
    written = [p for p in tmp_path.rglob("*") if p.is_file() and PASSWORD.encode() in p.read_bytes()]
    assert written == []


@pytest.mark.parametrize("case, overrides, reason", [
    ("wrong password", {"password": "wrong-pw"}, 'password authentication failed for user "factory"'),
    ("unreachable host", {"port": "closed"}, "Connection refused"),
    ("missing table", {"query": "SELECT * FROM nope"}, 'data.source.query failed: '),
])
def test_failures_are_one_line_with_the_password_masked(server, tmp_path, case, overrides, reason):
    host, _ = server
    if overrides.get("port") == "closed":
        host = f"127.0.0.1:{_free_port()}"  # nothing listens there: refused at once
    password = overrides.get("password", PASSWORD)
    extra = [f'data.source.query="{overrides["query"]}"'] if "query" in overrides else []
    result = _train(tmp_path, _url(host, password), *extra)
    assert result.returncode == 2, f"{case}: {result.stderr[-2000:]}"
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: cannot query postgresql://factory:***@{host}/postgres: "), line
    assert reason in line and password not in line
    if case == "missing table":
        assert 'relation "nope" does not exist' in line
