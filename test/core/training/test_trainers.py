"""Short runs of both trainers on a tiny dataset: outputs, loadable weights, exact resume after a kill."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from gsvnet_ros.config import ModelConfig
from gsvnet_ros.models import build_gsvnet, load_weights, read_weights
from gsvnet_ros.models.weights import WeightsMismatchError, part_state_dict, save_weights, weights_meta
from gsvnet_ros.training import (KeyframeTrainConfig, KeyframeTrainer, PropagationTrainConfig,
                                 PropagationTrainer, TrainingError, read_checkpoint, with_overrides)

_LOOP = {"batch_size": 2, "log_every": 1, "val_every": 2, "checkpoint_every": 2, "precision": "fp32",
         "channels_last": False, "threads": 1}


def _keyframe_cfg(net: str = "swiftnet_r18", iterations: int = 3) -> KeyframeTrainConfig:
    return with_overrides(KeyframeTrainConfig(), {
        "model": {"keyframe_net": net}, "loop": {**_LOOP, "iterations": iterations},
        "augment": {"crop_height": 64, "crop_width": 64}, "optim": {"warmup_iterations": 1}})


def _propagation_cfg(iterations: int = 3, **model) -> PropagationTrainConfig:
    return with_overrides(PropagationTrainConfig(), {
        "model": model, "loop": {**_LOOP, "iterations": iterations}, "distill_weight": 1.0,
        "clips": {"crop_height": 32, "crop_width": 64}, "optim": {"warmup_iterations": 1}})


@pytest.fixture(scope="module")
def keyframe_run(tmp_path_factory) -> tuple[Path, Path]:
    """(data root, run dir) of a 3-iteration SwiftNet keyframe run, shared by the propagation tests."""
    from training_helpers import write_fake_cityscapes
    base = tmp_path_factory.mktemp("kf")
    root = write_fake_cityscapes(base / "data", {"train": 2, "val": 1})
    threads, rng = torch.get_num_threads(), torch.get_rng_state()
    KeyframeTrainer(_keyframe_cfg(), base / "run", data_root=root, progress=False).run()
    torch.set_num_threads(threads)
    torch.set_rng_state(rng)
    return root, base / "run"


def _csv_iterations(path: Path) -> list[int]:
    with path.open() as handle:
        return [int(row["iteration"]) for row in csv.DictReader(handle)]


def test_keyframe_run_writes_checkpoint_csv_weights_and_summary(keyframe_run):
    _, run = keyframe_run
    assert read_checkpoint(run / "checkpoint.pt")["iteration"] == 3
    assert _csv_iterations(run / "train_keyframe.csv") == [1, 2, 3]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["iterations"] == 3 and summary["last_val"]["iteration"] == 3
    assert 0 <= summary["best_val"]["val_miou"] <= 100
    weights = run / "keyframe_swiftnet_r18.pt"
    assert summary["weights"][0]["file"] == weights.name and weights.stat().st_size <= 32 * 2**20
    state, meta = read_weights(weights)
    assert meta["architecture"] == "swiftnet_r18" and meta["trained_iterations"] == 3
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
    fresh = build_gsvnet(ModelConfig())
    load_weights(fresh, weights, part="keyframe")


def test_bisenet_keyframe_run_trains_aux_heads_and_exports(tmp_path, keyframe_run):
    root, _ = keyframe_run
    KeyframeTrainer(_keyframe_cfg("bisenet_r18", 2), tmp_path, data_root=root, progress=False).run()
    weights = tmp_path / "keyframe_bisenet_r18.pt"
    assert weights.stat().st_size <= 32 * 2**20  # aux heads included (one state_dict for train and use)
    fresh = build_gsvnet(ModelConfig(keyframe_net="bisenet_r18"))
    assert load_weights(fresh, weights, part="keyframe")["architecture"] == "bisenet_r18"


@pytest.mark.parametrize("model, name", [
    ({}, "propagation_swiftnet_r18.pt"),
    ({"use_intra": False}, "propagation_swiftnet_r18_nointra.pt"),
    ({"learnable_kernels": True}, "propagation_swiftnet_r18_learned.pt"),
    ({"kernel_size": 5}, "propagation_swiftnet_r18_5x5.pt"),
    ({"flow": "dis"}, "propagation_swiftnet_r18_dis.pt"),
])
def test_propagation_run_exports_weights_that_load_into_a_fresh_gsvnet(tmp_path, keyframe_run, model, name):
    root, kf_run = keyframe_run
    trainer = PropagationTrainer(_propagation_cfg(**model), tmp_path, data_root=root, progress=False,
                                 keyframe_weights=kf_run / "keyframe_swiftnet_r18.pt")
    summary = trainer.run()
    assert _csv_iterations(tmp_path / "train_propagation.csv") == [1, 2, 3]
    assert {"val_avg_miou", "val_min_miou", "val_key_miou"} <= set(summary["last_val"])
    assert list((tmp_path / "cache").glob("clips_*.pt"))
    fresh = build_gsvnet(ModelConfig(**model))
    meta = load_weights(fresh, tmp_path / name, part="propagation")
    assert meta["keyframe_weights_sha256"] == summary["keyframe_weights_sha256"]
    assert torch.equal(fresh.gsv.guide.state_dict()["d.0.weight"].half().float(),
                       trainer.model.gsv.guide.state_dict()["d.0.weight"].half().float())


def test_frozen_keyframe_net_is_not_changed_by_propagation_training(tmp_path, keyframe_run):
    root, kf_run = keyframe_run
    trainer = PropagationTrainer(_propagation_cfg(2), tmp_path, data_root=root, progress=False,
                                 keyframe_weights=kf_run / "keyframe_swiftnet_r18.pt")
    before = {k: v.clone() for k, v in trainer.model.keyframe_net.state_dict().items()}
    trainer.run()
    after = trainer.model.keyframe_net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and BN running stats


class _Killed(Exception):
    pass


def _kill_after(iteration: int):
    def hook(done: int) -> None:
        if done == iteration:
            raise _Killed
    return hook


def _assert_same_state(a: dict, b: dict) -> None:
    assert a["iteration"] == b["iteration"]
    for name in a["modules"]:
        for key, value in a["modules"][name].items():
            assert torch.equal(value, b["modules"][name][key]), key
    opt_a, opt_b = a["optimizer"], b["optimizer"]
    assert opt_a["param_groups"] == opt_b["param_groups"]
    for pid, state in opt_a["state"].items():
        for key, value in state.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(opt_b["state"][pid][key])), (pid, key)
    assert a["scheduler"] == b["scheduler"] and a["rng"]["sampler"] == b["rng"]["sampler"]


@pytest.mark.parametrize("mode", ["keyframe", "propagation"])
def test_killed_run_resumes_to_the_same_state_as_an_uninterrupted_run(tmp_path, keyframe_run, mode):
    root, kf_run = keyframe_run

    def trainer(run: Path, **kwargs):
        if mode == "keyframe":
            return KeyframeTrainer(_keyframe_cfg(iterations=4), run, data_root=root, progress=False, **kwargs)
        return PropagationTrainer(_propagation_cfg(4), run, data_root=root, progress=False,
                                  keyframe_weights=kf_run / "keyframe_swiftnet_r18.pt", **kwargs)

    trainer(tmp_path / "straight").run()
    with pytest.raises(_Killed):  # killed after iteration 3; the last checkpoint is iteration 2
        trainer(tmp_path / "killed", on_iteration=_kill_after(3)).run()
    assert read_checkpoint(tmp_path / "killed" / "checkpoint.pt")["iteration"] == 2
    resumed = trainer(tmp_path / "killed", resume=True)
    assert resumed.resumed_from == 2
    resumed.run()
    _assert_same_state(read_checkpoint(tmp_path / "straight" / "checkpoint.pt"),
                       read_checkpoint(tmp_path / "killed" / "checkpoint.pt"))
    assert _csv_iterations(tmp_path / "killed" / f"train_{mode}.csv") == [1, 2, 3, 4]


def test_existing_checkpoint_needs_resume_and_an_unchanged_config(tmp_path, keyframe_run):
    root, _ = keyframe_run
    KeyframeTrainer(_keyframe_cfg(iterations=1), tmp_path, data_root=root, progress=False).run()
    with pytest.raises(TrainingError, match="pass --resume"):
        KeyframeTrainer(_keyframe_cfg(iterations=1), tmp_path, data_root=root, progress=False)
    changed = with_overrides(_keyframe_cfg(iterations=1), {"optim": {"lr": 0.5}})
    with pytest.raises(TrainingError, match=r"optim.lr \(0.001 -> 0.5\)"):
        KeyframeTrainer(changed, tmp_path, data_root=root, progress=False, resume=True)
    longer = KeyframeTrainer(_keyframe_cfg(iterations=2), tmp_path, data_root=root, progress=False,
                             resume=True)
    assert longer.resumed_from == 1 and longer.run()["iterations"] == 2


def test_propagation_refuses_a_file_that_is_not_keyframe_weights(tmp_path, keyframe_run):
    root, _ = keyframe_run
    other = tmp_path / "p.pt"
    from gsvnet_ros.models import part_state_dict, save_weights, weights_meta
    net = build_gsvnet(ModelConfig())
    save_weights(part_state_dict(net, "propagation"), other, meta=weights_meta(net, "propagation"))
    with pytest.raises(TrainingError, match="not a keyframe weight file"):
        PropagationTrainer(_propagation_cfg(1), tmp_path / "run", data_root=root, keyframe_weights=other)


def test_second_run_on_the_same_keyframe_weights_reuses_the_logit_cache(tmp_path, keyframe_run, monkeypatch):
    root, kf_run = keyframe_run
    weights = kf_run / "keyframe_swiftnet_r18.pt"
    first = PropagationTrainer(_propagation_cfg(1), tmp_path / "a", data_root=root, progress=False,
                               keyframe_weights=weights, cache_dir=tmp_path / "cache")
    from gsvnet_ros.training import clips

    def recompute(*args, **kwargs):
        raise AssertionError("keyframe logits recomputed although the cache matches")
    monkeypatch.setattr(clips, "_compute_snippet", recompute)
    second = PropagationTrainer(_propagation_cfg(1, use_intra=False), tmp_path / "b", data_root=root,
                                progress=False, keyframe_weights=weights, cache_dir=tmp_path / "cache")
    for a, b in zip(first.train_clips, second.train_clips):
        assert torch.equal(a.logits_1_8, b.logits_1_8) and torch.equal(a.frames_1_8, b.frames_1_8)


def test_keyframe_warm_start_begins_from_the_given_weights(tmp_path, keyframe_run):
    root, run = keyframe_run
    start, _ = read_weights(run / "keyframe_swiftnet_r18.pt")
    cfg = with_overrides(_keyframe_cfg(iterations=1), {"init_weights": str(run / "keyframe_swiftnet_r18.pt")})
    trainer = KeyframeTrainer(cfg, tmp_path / "warm", data_root=root, progress=False)
    trainer.setup()
    for key, value in trainer.net.state_dict().items():
        if value.is_floating_point():
            torch.testing.assert_close(value, start[key].to(value.dtype), msg=key)


def test_keyframe_warm_start_with_another_trunk_keeps_the_heads_and_swaps_the_trunk(tmp_path, keyframe_run):
    """init_weights + init_backbone: the whole BiSeNet from one file, then its ResNet-18 trunk from a
    SwiftNet file (a better trunk under heads that were already trained)."""
    root, run = keyframe_run
    source = build_gsvnet(ModelConfig(keyframe_net="bisenet_r18"))
    with torch.no_grad():
        for value in source.keyframe_net.parameters():
            value.add_(0.25)  # unlike any fresh initialisation
    heads = save_weights(part_state_dict(source, "keyframe"), tmp_path / "bise.pt", half=False,
                         meta=weights_meta(source, "keyframe"))
    trunk_file = run / "keyframe_swiftnet_r18.pt"
    trunk, _ = read_weights(trunk_file)
    cfg = with_overrides(_keyframe_cfg("bisenet_r18", iterations=1),
                         {"init_weights": str(heads), "init_backbone": str(trunk_file)})
    trainer = KeyframeTrainer(cfg, tmp_path / "both", data_root=root, progress=False)
    trainer.setup()
    expected_heads = source.keyframe_net.state_dict()
    swapped = 0
    for key, value in trainer.net.state_dict().items():
        if not value.is_floating_point():
            continue
        if key.startswith("context_path."):
            swapped += 1
            torch.testing.assert_close(value, trunk["backbone." + key[len("context_path."):]].to(value.dtype),
                                       msg=key)
        else:
            torch.testing.assert_close(value, expected_heads[key], msg=key)
    assert swapped == sum(key.startswith("backbone.") and value.is_floating_point()
                          for key, value in trunk.items())  # the whole trunk


def test_learned_kernels_warm_start_from_a_fixed_kernel_file(tmp_path, keyframe_run):
    """Table A5: the learned-kernel variant starts from a fixed-kernel file, kernels one-hot (= fixed)."""
    from gsvnet_ros.models.gsv import ideal_delay_kernels

    root, kf_run = keyframe_run
    source = build_gsvnet(ModelConfig())
    path = save_weights(part_state_dict(source, "propagation"), tmp_path / "fixed.pt",
                        meta=weights_meta(source, "propagation"))
    cfg = with_overrides(_propagation_cfg(1, learnable_kernels=True), {"init_weights": str(path)})
    trainer = PropagationTrainer(cfg, tmp_path / "learned", data_root=root, progress=False,
                                 keyframe_weights=kf_run / "keyframe_swiftnet_r18.pt", cache_dir=tmp_path / "c")
    trainer.setup()
    torch.testing.assert_close(trainer.model.gsv.shifts.kernels.detach(), ideal_delay_kernels(3))
    stored, _ = read_weights(path)
    torch.testing.assert_close(trainer.model.gsv.guide.d[0].weight, stored["gsv.guide.d.0.weight"].float())
    bare = build_gsvnet(ModelConfig(learnable_kernels=True))
    with pytest.raises(WeightsMismatchError, match=r"1 missing keys \[gsv.shifts.kernels\]"):
        load_weights(bare, path, part="propagation")  # elsewhere the key stays required


def test_propagation_warm_start_begins_from_the_given_weights(tmp_path, keyframe_run):
    root, kf_run = keyframe_run
    source = build_gsvnet(ModelConfig())
    with torch.no_grad():
        for value in part_state_dict(source, "propagation").values():
            if value.is_floating_point():
                value.normal_()
    path = save_weights(part_state_dict(source, "propagation"), tmp_path / "start.pt",
                        meta=weights_meta(source, "propagation"))
    cfg = with_overrides(_propagation_cfg(1), {"init_weights": str(path)})
    trainer = PropagationTrainer(cfg, tmp_path / "warm", data_root=root, progress=False,
                                 keyframe_weights=kf_run / "keyframe_swiftnet_r18.pt", cache_dir=tmp_path / "c")
    trainer.setup()
    start, _ = read_weights(path)
    for key, value in part_state_dict(trainer.model, "propagation").items():
        if value.is_floating_point():
            torch.testing.assert_close(value, start[key].to(value.dtype), msg=key)
    mismatched = with_overrides(_propagation_cfg(1, use_intra=False), {"init_weights": str(path)})
    with pytest.raises(WeightsMismatchError, match="unexpected keys"):
        PropagationTrainer(mismatched, tmp_path / "bad", data_root=root, progress=False,
                           keyframe_weights=kf_run / "keyframe_swiftnet_r18.pt",
                           cache_dir=tmp_path / "c").setup()


def test_crop_batches_are_seeded_by_run_seed_and_start_iteration(keyframe_run):
    from gsvnet_ros.training import KeyframeAugmentConfig
    from gsvnet_ros.training.data import index_split, load_keyframe_samples
    from gsvnet_ros.training.keyframe import CropBatches
    root, _ = keyframe_run
    store = load_keyframe_samples(index_split(root, "train"), "dense", progress=False)
    keys = sorted(store.labels)
    aug = KeyframeAugmentConfig(crop_height=64, crop_width=64)

    def first(seed, start):
        source = CropBatches(store, keys, aug, 3, seed, start, workers=2)
        batch = next(source)
        source.close()
        return batch

    images, labels = first(0, 0)
    assert images.shape == (3, 64, 64, 3) and labels.shape == (3, 64, 64)
    assert (first(0, 0)[0] == images).all()  # reproducible
    assert (first(0, 5)[0] != images).any() and (first(1, 0)[0] != images).any()


def test_keyframe_run_with_data_workers(keyframe_run, tmp_path):
    root, _ = keyframe_run
    cfg = with_overrides(_keyframe_cfg(iterations=2), {"loop": {"data_workers": 2}})
    threads, rng = torch.get_num_threads(), torch.get_rng_state()
    trainer = KeyframeTrainer(cfg, tmp_path / "run", data_root=root, progress=False)
    drawn = []
    original = trainer.next_batch
    trainer.next_batch = lambda: drawn.append(trainer.batches) or original()
    trainer.run()
    torch.set_num_threads(threads)
    torch.set_rng_state(rng)
    assert len(drawn) == 2 and drawn[1] is not None  # the worker pool fed the steps
    assert trainer.batches is None  # and was released at the end
    assert _csv_iterations(tmp_path / "run" / "train_keyframe.csv") == [1, 2]
    assert read_weights(tmp_path / "run" / "keyframe_swiftnet_r18.pt")[1]["trained_iterations"] == 2
