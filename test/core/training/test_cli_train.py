"""gsvnet-train: both subcommands end to end on a tiny dataset; errors exit with a one-line message."""
import json

from gsvnet_ros.cli.train import main


def _write_config(path, text):
    path.write_text(text)
    return str(path)


_TINY_KEYFRAME = ("augment: {crop_height: 64, crop_width: 64}\n"
                  "loop: {batch_size: 2, precision: fp32, channels_last: false, log_every: 1, threads: 1}\n")


def test_keyframe_then_propagation_from_the_command_line(tmp_path, fake_root, capsys):
    key_cfg = _write_config(tmp_path / "k.yaml", _TINY_KEYFRAME)
    rc = main(["keyframe", "--model", "swiftnet_r18", "--data", str(fake_root), "--out", str(tmp_path / "k"),
               "--config", key_cfg, "--iterations", "2", "--seed", "3", "--no-progress"])
    assert rc == 0
    assert "weights:" in capsys.readouterr().out
    summary = json.loads((tmp_path / "k" / "summary.json").read_text())
    assert summary["seed"] == 3 and summary["command_line"][1] == "keyframe"
    assert summary["device"] == "cpu" and summary["accelerator"] is None  # the model card says "CPU cores"
    prop_cfg = _write_config(tmp_path / "p.yaml", "clips: {crop_height: 32, crop_width: 64}\n"
                                                  "loop: {batch_size: 2, precision: fp32, threads: 1}\n")
    rc = main(["propagation", "--keyframe-weights", str(tmp_path / "k" / "keyframe_swiftnet_r18.pt"),
               "--data", str(fake_root), "--out", str(tmp_path / "p"), "--config", prop_cfg, "--no-intra",
               "--iterations", "2", "--no-progress", "--cache-dir", str(tmp_path / "cache")])
    assert rc == 0
    assert (tmp_path / "p" / "propagation_swiftnet_r18_nointra.pt").is_file()
    assert list((tmp_path / "cache").glob("clips_*.pt"))


def test_unknown_config_key_exits_2_with_the_key_named(tmp_path, fake_root, capsys):
    cfg = _write_config(tmp_path / "bad.yaml", "loop: {batchsize: 2}\n")
    rc = main(["keyframe", "--data", str(fake_root), "--out", str(tmp_path / "run"), "--config", cfg])
    assert rc == 2
    assert "unknown config key 'loop.batchsize'" in capsys.readouterr().err


def test_missing_data_exits_1_naming_the_folder(tmp_path, capsys):
    rc = main(["keyframe", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "run"), "--no-progress"])
    assert rc == 1
    assert "gtFine" in capsys.readouterr().err
