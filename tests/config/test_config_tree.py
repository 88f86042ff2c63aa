"""The configuration tree: nested frozen sections, one preset registry with headers, offline
twins instead of silent rewrites, file paths in RunFiles, old flat config.json files migrated, one sentence per
refused value."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from clipswap.cli import main
from clipswap.config import (
    FLAT_KEYS,
    OFFLINE_TWINS,
    PRESETS,
    SECTIONS,
    ConfigError,
    RunFiles,
    TrainConfig,
    apply_overrides,
    check_runnable,
    get_preset,
    migrate_flat_config,
    resolve_config,
    resolve_key,
    resolve_run,
)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_round_trips_through_config_json_and_has_a_header(name):
    preset = get_preset(name)
    assert preset.config.preset == name and preset.model is preset.config.model
    data = json.loads(preset.config.to_json())
    assert set(data) == {"preset", "seed", *SECTIONS}
    assert TrainConfig.from_dict(data) == preset.config
    header = preset.header()
    assert all(header[key] for key in ("command", "data", "time", "reaches")), header
    assert f"--preset {name}" in header["command"]


def test_the_paper_preset_without_its_files_is_refused_naming_them_and_its_twin():
    config, files = resolve_run("paper")
    with pytest.raises(ConfigError) as error:
        check_runnable(config, files)
    message = str(error.value)
    assert "ArcFace-Res50.h5" in message and "--arcface" in message and "--clip-preset" in message
    assert "--preset paper-offline" in message and message.count(". ") == 0  # one sentence
    result = CliRunner().invoke(main, ["train", "--preset", "paper", "--dry-run"])
    assert result.exit_code == 1 and "paper-offline" in result.output
    # with both files the paper preset runs as it says
    assert check_runnable(config, RunFiles(arcface_path="/x/ArcFace-Res50.h5", clip_preset="/x/clip")) == []


def test_offline_twins_differ_from_their_preset_only_in_what_needs_files():
    for name, twin in OFFLINE_TWINS.items():
        online, offline = get_preset(name).config, get_preset(twin).config
        assert offline.model == online.model.replace(identity_encoder="sface", clip_variant=None)
        assert offline.weights.contra == 0.0 and offline.weights.ifsr == 0.0
        assert (offline.optimiser, offline.data, offline.schedule, offline.loss) == (
            online.optimiser,
            online.data,
            online.schedule,
            online.loss,
        )
        assert check_runnable(offline, RunFiles()) == []
    with pytest.raises(ConfigError, match="ArcFace-R50 file.*offline preset"):
        check_runnable(get_preset("release").config, RunFiles())
    with pytest.raises(ConfigError, match="--preset facedancer-offline"):
        check_runnable(get_preset("facedancer").config, RunFiles())


def test_keys_resolve_in_one_place_in_every_spelling():
    assert resolve_key("steps") == resolve_key("schedule.steps") == ("schedule", "steps")
    assert resolve_key("lr_g") == ("optimiser", "lr_g") and resolve_key("precision") == ("compute", "precision")
    assert resolve_key("model.source_image") == ("model", "source_image")
    assert resolve_key("weights.teacher") == ("weights", "teacher") and resolve_key("seed") == ("", "seed")
    assert resolve_key("attribute_file") == ("files", "attribute_file")
    assert len(FLAT_KEYS) == len(set(FLAT_KEYS))
    config = resolve_config(
        "demo_warp",
        overrides={
            "keep_checkpoints": "10",
            "schedule.log_every": 7,
            "weights.teacher": "1.0",
            "model.source_image": "true",
        },
    )
    assert config.schedule.keep_checkpoints == 10 and config.schedule.log_every == 7
    assert config.weights.teacher == 1.0 and config.model.source_image is True
    # nested YAML-style sections and whole section objects go through the same resolution
    assert apply_overrides(config, {"data": {"batch_size": 4}}).data.batch_size == 4
    assert config.replace(optimiser=config.optimiser, lr_d=2e-4).optimiser.lr_d == 2e-4


def test_file_keys_go_to_run_files_not_to_the_experiment():
    config, files = resolve_run("tiny", overrides={"attribute_file": "/x/a.keras", "vgg_weights": "/x/vgg.h5"})
    assert files == RunFiles(vgg_weights="/x/vgg.h5", attribute_file="/x/a.keras")
    assert config.loss.vgg_weights == "imagenet" and "a.keras" not in config.to_json()
    assert resolve_run("tiny", overrides={"vgg_weights": "null"})[0].loss.vgg_weights is None
    with pytest.raises(ConfigError, match="attribute_file is a file of the run"):
        resolve_config("tiny", overrides={"attribute_file": "/x/a.keras"})
    out = CliRunner().invoke(main, ["train", "--preset", "tiny", "--dry-run", "--set", "attribute_file=/x/a.keras"])
    printed = json.loads(out.output[out.output.index("{") :])
    assert printed["files"]["attribute_file"] == "/x/a.keras" and "attribute_file" not in json.dumps(printed["config"])


def test_model_files_by_key_are_one_mapping_with_the_named_fields(tmp_path, monkeypatch):
    files = RunFiles(arcface_path="/x/ArcFace-Res50.h5", files={"retinaface": "/x/RetinaFace-Res50.h5"})
    assert files.model_files() == {"arcface": "/x/ArcFace-Res50.h5", "retinaface": "/x/RetinaFace-Res50.h5"}
    assert RunFiles(files={"arcface": "/x/a.h5"}).model_files() == {"arcface": "/x/a.h5"}
    assert RunFiles().files == {} and RunFiles().model_files() == {}
    # The same key by its field and by --file: accepted when both name one path, one sentence when they differ.
    assert RunFiles(arcface_path="/x/a.h5", files={"arcface": "/x/a.h5"}).model_files() == {"arcface": "/x/a.h5"}
    with pytest.raises(ConfigError) as error:
        RunFiles(arcface_path="/x/a.h5", files={"arcface": "/y/b.h5"})
    assert str(error.value) == (
        "the arcface file is given twice, /x/a.h5 with --arcface and /y/b.h5 with --file arcface=PATH: give it once"
    )
    # --file and --arcface (or --set arcface_path) reach the same mapping; the paths resolved like the other flags.
    monkeypatch.chdir(tmp_path)
    for name in ("A.h5", "a.h5", "b.h5"):
        (tmp_path / name).write_bytes(b"")
    out = CliRunner().invoke(main, ["train", "--preset", "tiny", "--dry-run", "--file", "arcface=A.h5"])
    printed = json.loads(out.output[out.output.index("{") :])
    assert printed["files"]["files"] == {"arcface": str(Path("A.h5").resolve())}
    assert any("--arcface given but the identity encoder is sface" in note for note in printed["notes"])
    out = CliRunner().invoke(
        main, ["train", "--preset", "tiny", "--dry-run", "--file", "arcface=a.h5", "--set", "arcface_path=/y/b.h5"]
    )
    assert out.exit_code != 0 and "the arcface file is given twice" in out.output
    missing = CliRunner().invoke(main, ["train", "--preset", "facedancer", "--dry-run"])
    assert "pass --arcface, or train its offline twin" in missing.output
    given = CliRunner().invoke(main, ["train", "--preset", "facedancer", "--dry-run", "--file", "arcface=a.h5"])
    assert given.exit_code == 0, given.output
    absent = CliRunner().invoke(main, ["train", "--preset", "facedancer", "--dry-run", "--file", "arcface=gone.h5"])
    assert absent.exit_code == 2 and "arcface=gone.h5: no such file" in absent.output


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"steps": 0}, "schedule.steps must be >= 1, got 0"),
        ({"lr_g": -1.0}, "optimiser.lr_g must be a positive learning rate"),
        ({"beta2": 1.0}, "optimiser.beta2: Adam beta2 must be in [0, 1)"),
        ({"same_identity_prob": 2}, "data.same_identity_prob must be in [0, 1]"),
        ({"source_glasses": 1.5}, "augmentation.source_glasses is a probability in [0, 1], got 1.5"),
        ({"source_glasses": 0.4}, "draws glasses on the sources' landmarks, which only the pairs of a conditioning"),
        ({"precision": "fp8"}, "precision must be one of"),
        ({"perceptual_network": "alexnet"}, "perceptual_network must be one of"),
        ({"seed": -1}, "seed must be an integer >= 0"),
        ({"weights.contra": 0.3}, "weights.contra > 0 needs CLIP"),
        ({"weights.ifsr": 1.0}, "weights.ifsr > 0 needs ArcFace-R50 layers"),
        ({"model.image_size": 96}, "power-of-two image size"),
        ({"schedule.nope": 1}, "unknown key 'schedule.nope'"),
        ({"nope.steps": 1}, "unknown configuration section 'nope'"),
        ({"jitter": "maybe"}, "jitter must be true or false"),
        ({"weights.id": "nan"}, "weights.id must be a finite number, got nan"),
        ({"lr_g": "inf"}, "optimiser.lr_g must be a finite number, got inf"),
        ({"weights.rec": float("-inf")}, "weights.rec must be a finite number, got -inf"),
    ],
)
def test_each_refused_value_is_one_sentence_naming_its_key(overrides, message):
    with pytest.raises(ConfigError) as error:
        resolve_config("tiny", overrides=overrides)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_run_rules_are_checked_with_the_files_and_replicas():
    tiny = get_preset("tiny").config
    with pytest.raises(ConfigError, match="attribute_network 'file' needs attribute_file"):
        check_runnable(tiny.replace(attribute_network="file"), RunFiles())
    with pytest.raises(ConfigError, match="not divisible by the 3 replicas"):
        check_runnable(tiny, RunFiles(), replicas=3)
    notes = check_runnable(tiny.replace(precision="fp16", xla=True), RunFiles(arcface_path="/x/a.h5"))
    assert any("not used" in note for note in notes) and any("fp16 with XLA" in note for note in notes)


OLD_FLAT_PAPER = {  # what `clipswap train --preset paper` wrote before the tree (the offline rewrite)
    "preset": "paper",
    "batch_size": 10,
    "steps": 300000,
    "lr_g": 1e-4,
    "lr_d": 1e-4,
    "beta1": 0.0,
    "beta2": 0.999,
    "lr_decay_rate": 1.0,
    "lr_decay_steps": 100000,
    "same_identity_prob": 0.2,
    "jitter": True,
    "shuffle_buffer": 1000,
    "seed": 0,
    "n_aug": 4,
    "aug_distortion": 0.5,
    "aug_crop_fraction": 0.75,
    "perceptual_network": "vgg16",
    "vgg_weights": "imagenet",
    "vgg_preprocessing": False,
    "facedancer_perceptual": False,
    "facedancer_rec_clip": False,
    "id_augment": False,
    "id_augment_grey": 0.0,
    "source_glasses": 0.0,
    "teacher_face_only": False,
    "teacher_background": False,
    "id_warmup_steps": 0,
    "id_warmup_weight": 10.0,
    "perceptual_to_teacher": False,
    "attribute_network": "identity",
    "geometry_pose_weight": 1.0,
    "teacher_turn_gap": 0.0,
    "attribute_file": None,
    "precision": "fp32",
    "xla": False,
    "checkpoint_every": 1000,
    "keep_checkpoints": 3,
    "log_every": 50,
    "image_every": 1000,
    "eval_every": 1000,
    "eval_batch_size": 16,
    "checkpoint_data": True,
    "arcface_path": None,
    "clip_preset": None,
    "model": get_preset("paper-offline").model.to_dict(),
    "weights": get_preset("paper-offline").config.weights.as_dict(),
}


def test_an_old_flat_config_json_is_migrated_to_the_tree_it_was():
    migrated = migrate_flat_config(OLD_FLAT_PAPER)
    assert set(migrated) == {"preset", "seed", *SECTIONS}
    # the old code rewrote paper to SFace and no CLIP but kept the name: the migration names the twin it was
    assert TrainConfig.from_dict(OLD_FLAT_PAPER) == get_preset("paper-offline").config
    assert migrate_flat_config(migrated) == migrated  # a nested file is left as it is
    with pytest.raises(ConfigError, match="unknown training configuration keys"):
        migrate_flat_config({**OLD_FLAT_PAPER, "mystery": 1})


def test_resume_reads_an_old_flat_config_json_and_still_compares_it(tmp_path):
    from clipswap.training.run import TrainingSetupError
    from clipswap.training.run_folder import check_resume_config as _check_resume_config

    (tmp_path / "config.json").write_text(json.dumps(OLD_FLAT_PAPER))
    _check_resume_config(tmp_path, get_preset("paper-offline").config)  # the same run: accepted
    changed = get_preset("paper-offline").config.replace(batch_size=12)
    with pytest.raises(TrainingSetupError, match="data.batch_size differs from the run's config.json"):
        _check_resume_config(tmp_path, changed)
    # The discriminator's shape options change its weights' shapes: refused in one sentence, not a restore error.
    for key, value in (("discriminator_paired", True), ("discriminator_patch_blocks", 2)):
        with pytest.raises(TrainingSetupError, match=f"loss.{key} differs from the run's config.json"):
            _check_resume_config(tmp_path, get_preset("paper-offline").config.replace(**{key: value}))
