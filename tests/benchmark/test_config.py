import pytest

from benchmark.config import ConfigError, compose, config_hash
from benchmark.registry import UnknownNameError, models


def test_compose_applies_preset_and_overrides():
    cfg = compose("static", "synthetic", "tiny", ["trainer.max_steps=7", "run.seed=5"])
    assert cfg.trainer.max_steps == 7
    assert cfg.run.seed == 5
    assert cfg.run.preset == "tiny"
    assert cfg.run.name == "static"


def test_unknown_key_is_an_error_with_suggestion():
    with pytest.raises(ConfigError) as err:
        compose("static", "synthetic", "tiny", ["trainer.max_stpes=3"])
    msg = str(err.value)
    assert "max_stpes" in msg and "trainer.max_steps" in msg


def test_unknown_top_level_key():
    with pytest.raises(ConfigError, match="valid: .*trainer"):
        compose("static", "synthetic", "tiny", ["trainr.devices=2"])


def test_malformed_override():
    with pytest.raises(ConfigError, match="key=value"):
        compose("static", "synthetic", "tiny", ["trainer.max_steps"])


def test_unknown_model_and_dataset_suggest():
    with pytest.raises(ConfigError, match="did you mean 'static'|Did you mean 'static'"):
        compose("statik", "synthetic", "tiny")
    with pytest.raises(ConfigError, match="synthetic"):
        compose("static", "synthetc", "tiny")


def test_registry_did_you_mean():
    with pytest.raises(UnknownNameError) as err:
        models().get("wav2lipp")
    assert "Did you mean 'wav2lip'" in str(err.value)
    assert "static" in str(err.value)


def test_config_hash_changes_with_settings():
    a = compose("static", "synthetic", "tiny")
    b = compose("static", "synthetic", "tiny", ["run.seed=1"])
    assert config_hash(a) != config_hash(b)
    assert config_hash(a) == config_hash(compose("static", "synthetic", "tiny"))


def test_data_prefix_is_an_alias_of_dataset():
    cfg = compose("static", "synthetic", None, ["data.synth.n_clips=12"])
    assert cfg.dataset.synth.n_clips == 12
