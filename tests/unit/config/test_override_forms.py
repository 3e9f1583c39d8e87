"""Overrides arrive as users pass them: a list, or one string as papermill's -p gives it."""
import pytest

from factory import compose
from factory.config.compose import override_list
from factory.errors import ConfigError


@pytest.mark.parametrize("given, expected", [
    (["experiment=digits", "seed=1"], ["experiment=digits", "seed=1"]),
    ('["experiment=digits", "seed=1"]', ["experiment=digits", "seed=1"]),  # JSON, papermill -p
    ("[experiment=digits, seed=1]", ["experiment=digits", "seed=1"]),  # YAML flow list
    ("experiment=digits", ["experiment=digits"]),
    ("experiment=digits  seed=1", ["experiment=digits", "seed=1"]),  # a command line
    ("'+tags=[a b]' seed=1", ["+tags=[a b]", "seed=1"]),  # quoted as in a shell
    ("", []), ("[]", []), ((), []),
])
def test_every_form_gives_the_same_list(given, expected):
    assert override_list(given) == expected


@pytest.mark.parametrize("given, message", [
    ('["experiment=digits"', "is not a JSON or YAML list"),
    ("[1, 2]", "expected strings such as 'experiment=digits', got 1"),
    ("experiment='digits", "No closing quotation"),
])
def test_a_bad_form_is_one_line(given, message):
    with pytest.raises(ConfigError, match=message) as raised:
        override_list(given)
    assert "\n" not in str(raised.value)


def test_compose_takes_a_single_string():
    from omegaconf import OmegaConf

    def plain(overrides):  # unresolved: each compose draws its own run id
        return OmegaConf.to_container(compose("train", overrides), resolve=False)

    as_list = plain(["experiment=digits", "trainer.max_epochs=2"])
    assert as_list["trainer"]["max_epochs"] == 2
    assert plain("experiment=digits trainer.max_epochs=2") == as_list
    assert plain('["experiment=digits", "trainer.max_epochs=2"]') == as_list
