"""Bearer tokens (``factory.serving.auth``) and the server's start-up helpers, without a server."""
from __future__ import annotations

import socket

import pytest

from factory.errors import ConfigError, FactoryError
from factory.serving.auth import TOKENS_ENV, load_tokens, token_ok
from factory.cli import take_model_argument
from factory.serving.server import check_port


def test_tokens_from_a_file_skip_blanks_and_comments(tmp_path, monkeypatch):
    monkeypatch.setenv(TOKENS_ENV, "from-env")  # the file wins
    path = tmp_path / "tokens"
    path.write_text("# ops team\n\nalpha\n  beta  \n")
    assert load_tokens(str(path)) == [b"alpha", b"beta"]


def test_tokens_from_the_environment_or_none(monkeypatch):
    monkeypatch.delenv(TOKENS_ENV, raising=False)
    assert load_tokens(None) is None  # auth off
    monkeypatch.setenv(TOKENS_ENV, "a, b ,,")
    assert load_tokens(None) == [b"a", b"b"]
    monkeypatch.setenv(TOKENS_ENV, " , ")
    with pytest.raises(ConfigError, match=f"\\${TOKENS_ENV} is set but holds no token"):
        load_tokens(None)


@pytest.mark.parametrize("text, message", [(None, "cannot read"), ("# none\n\n", "holds no token"),
                                           ("two words\n", "token 1 holds a space")])
def test_bad_tokens_files(tmp_path, text, message):
    path = tmp_path / "tokens"
    if text is not None:
        path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_tokens(str(path))
    assert "two words" not in str(info.value)  # a token never appears in a message


@pytest.mark.parametrize("header, ok", [
    (b"Bearer alpha", True), (b"bearer beta", True), (b"Bearer  beta ", True),
    (None, False), (b"", False), (b"Bearer ", False), (b"Bearer", False), (b"Basic alpha", False),
    (b"Bearer alph", False), (b"Bearer alphaa", False), (b"Bearer alpha beta", False),
])
def test_token_check(header, ok):
    assert token_ok(header, [b"alpha", b"beta"]) is ok


def test_model_argument_is_taken_out_of_the_overrides():
    assert take_model_argument(["model=fraud@production", "port=9000", "+model.x=1"]) == \
        (["port=9000", "+model.x=1"], "fraud@production")
    assert take_model_argument(["port=1"]) == (["port=1"], None)


def test_a_busy_port_is_refused_before_uvicorn_binds_it():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(FactoryError, match=f"port={port}: cannot listen on 127.0.0.1:{port}"):
            check_port("127.0.0.1", port)
    check_port("127.0.0.1", port)  # free again
