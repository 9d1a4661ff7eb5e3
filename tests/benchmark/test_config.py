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


# ------------------------------------------------------------------- presets from one source (the config dataclass)

MODELS = ["syncnet_expert", "wav2lip", "wav2lip_gan", "lipgan", "diffused_heads", "vasa_face", "vasa", "static"]


@pytest.mark.parametrize("name", MODELS)
def test_params_are_the_config_dataclass_at_the_preset(name):
    """The run's params are the model's dataclass (its schema) with the preset's YAML values: the same values
    `Config.preset()` gives code and tests, and the paper preset is the dataclass defaults plus what it states."""
    from omegaconf import OmegaConf

    from benchmark.train import model_params

    cls = models().get(name).config_class
    for preset in ("tiny", "paper"):
        for dataset in ("synthetic", "crema", "lrw"):
            cfg = compose(name, dataset, preset)
            assert OmegaConf.get_type(cfg.model.params) is cls
            got = model_params(cfg, models().get(name))
            if hasattr(cls, "preset"):
                assert got == cls.preset(preset, dataset=dataset)
    if name != "static":
        assert compose(name, "synthetic", "tiny").model.params != compose(name, "synthetic", "paper").model.params


def test_param_overrides_are_typed_and_known():
    cfg = compose("wav2lip", "synthetic", "tiny", ["model.params.lr=0.5"])
    assert cfg.model.params.lr == 0.5 and cfg.model.params.width == 0.125  # the rest stays the preset's
    with pytest.raises(ConfigError, match="model.params.lr"):
        compose("wav2lip", "synthetic", "tiny", ["model.params.lr=fast"])
    with pytest.raises(ConfigError, match="model.params.widht.*Did you mean 'model.params.width'"):
        compose("wav2lip", "synthetic", "tiny", ["model.params.widht=1.0"])


def test_a_params_mirror_in_the_model_yaml_is_refused(tmp_path, monkeypatch):
    import shutil

    from benchmark.config import config_dir

    shutil.copytree(config_dir(), tmp_path / "configs")
    path = tmp_path / "configs" / "models" / "wav2lip.yaml"
    path.write_text(path.read_text() + "params: {width: null}\n")
    monkeypatch.setenv("TALKBENCH_CONFIGS", str(tmp_path / "configs"))
    with pytest.raises(ConfigError, match=r"wav2lip.yaml: `params:` belongs under a preset"):
        compose("wav2lip", "synthetic", "tiny")


def test_tiny_expert_width_matches_the_generators():
    """Wav2Lip's `expert_width` must be the tiny expert's own width, or the trained expert does not load."""
    expert = compose("syncnet_expert", "synthetic", "tiny").model.params.width
    for name in ("wav2lip", "wav2lip_gan"):
        assert compose(name, "synthetic", "tiny").model.params.expert_width == expert


@pytest.mark.parametrize("name", MODELS)
def test_trainer_section_is_lightning_trainer_arguments(name):
    """Every trainer key is a `lightning.Trainer` argument, so `Trainer(**cfg.trainer, ...)` takes the section as
    it is, for every preset."""
    import inspect

    import lightning as L

    accepted = set(inspect.signature(L.Trainer.__init__).parameters)
    for preset in ("tiny", "paper"):
        keys = set(compose(name, "crema", preset).trainer)
        assert keys <= accepted, sorted(keys - accepted)


def test_renamed_keys_say_where_the_setting_lives_now():
    for old, new in [
        ("trainer.val_every_n_steps=5", "trainer.val_check_interval"),
        ("trainer.max_time_s=60", "trainer.max_time"),
        ("trainer.progress=false", "run.progress"),
        ("syncnet_expert.trainer.progress=false", "syncnet_expert.run.progress"),
    ]:
        with pytest.raises(ConfigError, match=f"is now {new}"):
            compose("wav2lip", "synthetic", "tiny", [old])


def test_a_dataset_metrics_block_overrides_the_metric_defaults(tmp_path, monkeypatch):
    import shutil

    from benchmark.config import config_dir

    shutil.copytree(config_dir(), tmp_path / "configs")
    path = tmp_path / "configs" / "datasets" / "lrw.yaml"
    path.write_text(path.read_text() + "metrics:\n  cpbd: {stride: 3}\n")
    monkeypatch.setenv("TALKBENCH_CONFIGS", str(tmp_path / "configs"))
    cfg = compose("static", "lrw", "tiny")
    assert cfg.metrics.cpbd.stride == 3 and "metrics" not in cfg.dataset
    assert compose("static", "lrw", "tiny", ["metrics.cpbd.stride=2"]).metrics.cpbd.stride == 2
    path.write_text(path.read_text() + "  cpdb: {stride: 3}\n")
    with pytest.raises(ConfigError, match="lrw.yaml"):
        compose("static", "lrw", "tiny")
