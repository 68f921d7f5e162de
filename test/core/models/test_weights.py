"""Weight files: fp16 round trip per part, atomic writes, weights_only loading, named errors."""
import pytest
import torch

from gsvnet_ros.config import ModelConfig
from gsvnet_ros.models import GSVNet
from gsvnet_ros.models.bisenet import BiSeNetR18
from gsvnet_ros.models.swiftnet import SwiftNetR18
from gsvnet_ros.models.weights import (WeightsCorruptError, WeightsError, WeightsMismatchError,
                                       WeightsNotFoundError, check_lineage, load_weights, part_state_dict,
                                       read_weights, save_weights, weights_meta, load_resnet_trunk)
from gsvnet_ros.reporting import file_sha256 as weights_sha256


def _prop_net(**kw):
    return GSVNet(ModelConfig(num_classes=4, **kw), keyframe_net=torch.nn.Identity())


def _randomise(module):
    with torch.no_grad():
        for t in module.state_dict().values():
            if t.is_floating_point():
                t.copy_(torch.randn_like(t))


def test_propagation_round_trip_in_fp16(tmp_path):
    torch.manual_seed(0)
    src, dst = _prop_net(), _prop_net()
    _randomise(src)
    path = save_weights(part_state_dict(src, "propagation"), tmp_path / "prop.pt",
                        meta=weights_meta(src, "propagation"))
    state, meta = read_weights(path)
    assert all(v.dtype == torch.float16 for k, v in state.items() if not k.endswith("num_batches_tracked"))
    assert state["gsv.guide.a.1.num_batches_tracked"].dtype == torch.int64
    assert meta["architecture"] == "gsvnet_propagation" and meta["num_classes"] == 4
    assert meta["config"]["fusion"] == "code" and meta["part"] == "propagation"
    returned = load_weights(dst, path, part="propagation")
    assert returned == meta
    for key, value in part_state_dict(src, "propagation").items():
        loaded = part_state_dict(dst, "propagation")[key]
        assert loaded.dtype == value.dtype  # cast back to the module's dtype
        expected = value.half().to(value.dtype) if value.is_floating_point() else value
        assert torch.equal(loaded, expected), key


def test_keyframe_round_trip_into_a_gsvnet_and_a_bare_net(tmp_path):
    torch.manual_seed(0)
    src = SwiftNetR18(3)
    path = save_weights(src, tmp_path / "key.pt", half=False, meta=weights_meta(src, "keyframe"))
    bare = SwiftNetR18(3)
    load_weights(bare, path, part="keyframe")
    assert all(torch.equal(a, b) for a, b in zip(src.state_dict().values(), bare.state_dict().values()))
    net = GSVNet(ModelConfig(num_classes=3))
    meta = load_weights(net, path, part="keyframe")
    assert meta["architecture"] == "swiftnet_r18"
    assert torch.equal(net.keyframe_net.logits.conv.weight, src.logits.conv.weight)


def test_loading_casts_to_the_module_dtype(tmp_path):
    src = _prop_net()
    path = save_weights(part_state_dict(src, "propagation"), tmp_path / "p.pt", meta={"x": [1, 2.0, None]})
    dst = _prop_net().double()
    load_weights(dst, path, part="propagation")
    assert dst.flow_net.to_flow.weight.dtype == torch.float64


def test_save_is_atomic_and_overwrites(tmp_path):
    path = tmp_path / "sub" / "w.pt"
    save_weights(torch.nn.Linear(2, 2), path, meta={"v": 1})
    first = weights_sha256(path)
    save_weights(torch.nn.Linear(2, 2), path, meta={"v": 2})
    assert [p.name for p in path.parent.iterdir()] == ["w.pt"]  # no temp files left behind
    assert weights_sha256(path) != first and read_weights(path)[1] == {"v": 2}


def test_meta_must_be_plain_data(tmp_path):
    with pytest.raises(TypeError, match=r"meta\.bad"):
        save_weights(torch.nn.Linear(2, 2), tmp_path / "w.pt", meta={"bad": object()})
    assert not (tmp_path / "w.pt").exists()


def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nope.pt"
    with pytest.raises(WeightsNotFoundError, match="weights file not found: .*nope.pt"):
        load_weights(_prop_net(), path, part="propagation")
    assert issubclass(WeightsNotFoundError, FileNotFoundError)


def test_file_for_another_architecture_lists_missing_and_unexpected_keys(tmp_path):
    src = BiSeNetR18(3)
    path = save_weights(src, tmp_path / "bise.pt", meta=weights_meta(src, "keyframe"))
    with pytest.raises(WeightsMismatchError) as err:
        load_weights(GSVNet(ModelConfig(num_classes=3)), path, part="keyframe")
    msg = str(err.value)
    assert "'bisenet_r18'" in msg and "missing keys" in msg and "unexpected keys" in msg
    assert "backbone.bn1.bias" in msg and "arms.0." in msg and "more)" in msg


def test_wrong_part_is_rejected(tmp_path):
    src = _prop_net()
    path = save_weights(part_state_dict(src, "propagation"), tmp_path / "p.pt",
                        meta=weights_meta(src, "propagation"))
    with pytest.raises(WeightsMismatchError, match="holds 'propagation' weights, but 'keyframe'"):
        load_weights(SwiftNetR18(4), path, part="keyframe")
    with pytest.raises(ValueError, match="part must be one of"):
        load_weights(src, path, part="all")


def test_shape_mismatch_names_the_key_and_both_shapes(tmp_path):
    src = _prop_net()
    path = save_weights(part_state_dict(src, "propagation"), tmp_path / "p.pt",
                        meta=weights_meta(src, "propagation"))
    other = GSVNet(ModelConfig(num_classes=5), keyframe_net=torch.nn.Identity())
    expected = (r"shape mismatch for 'gsv\.intra\.layers\.6\.weight': "
                r"file has \(4, 32, 3, 3\), model expects \(5, 32, 3, 3\)")
    with pytest.raises(WeightsMismatchError, match=expected):
        load_weights(other, path, part="propagation")


@pytest.mark.parametrize("damage", ["truncate", "garbage", "plain_state_dict", "empty"])
def test_corrupted_files_are_reported(tmp_path, damage):
    path = tmp_path / "w.pt"
    save_weights(_prop_net().flow_net, path, meta={})
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x00not a torch file" * 100)
    elif damage == "plain_state_dict":
        torch.save(_prop_net().flow_net.state_dict(), path)
    else:
        path.write_bytes(b"")
    with pytest.raises(WeightsCorruptError, match=f"corrupted or not a gsvnet_ros weight file: {path}"):
        read_weights(path)
    assert issubclass(WeightsCorruptError, WeightsError)


def test_non_finite_weights_are_refused_with_the_tensor_named(tmp_path):
    path = tmp_path / "w.pt"
    net = _prop_net().flow_net
    with torch.no_grad():
        net.to_flow.bias.fill_(float("nan"))
    save_weights(net, path, meta={})
    with pytest.raises(WeightsCorruptError, match=r"NaN or infinite values in 1 tensors \[to_flow.bias\]"):
        read_weights(path)


class _Payload:
    """Would run code at unpickling time if the file were loaded without weights_only."""

    def __reduce__(self):
        return (exec, ("open(%r, 'w').close()" % str(_Payload.marker),))


def test_loading_uses_weights_only(tmp_path):
    _Payload.marker = tmp_path / "executed"
    path = tmp_path / "evil.pt"
    with open(path, "wb") as handle:
        torch.save({"format": "gsvnet_ros.weights", "meta": {}, "state_dict": {}, "x": _Payload()}, handle)
    with pytest.raises(WeightsCorruptError, match="corrupted or not a gsvnet_ros weight file"):
        read_weights(path)
    assert not _Payload.marker.exists()


def test_resnet_trunk_moves_between_swiftnet_and_bisenet_and_nothing_else_changes(tmp_path):
    torch.manual_seed(0)
    swift = SwiftNetR18(5)
    _randomise(swift)
    path = save_weights(swift, tmp_path / "swift.pt", half=False, meta=weights_meta(swift, "keyframe"))
    bise = BiSeNetR18(5)
    before = {k: v.clone() for k, v in bise.state_dict().items()}
    assert load_resnet_trunk(bise, path) == "backbone."
    for key, value in bise.state_dict().items():
        if key.startswith("context_path."):
            assert torch.equal(value, swift.state_dict()["backbone." + key[len("context_path."):]]), key
        else:
            assert torch.equal(value, before[key]), key  # heads keep their fresh initialisation
    back = SwiftNetR18(5)
    bise_path = save_weights(bise, tmp_path / "bise.pt", half=False, meta=weights_meta(bise, "keyframe"))
    assert load_resnet_trunk(back, bise_path) == "context_path."
    assert torch.equal(back.backbone.layer4[1].conv2.weight, swift.backbone.layer4[1].conv2.weight)


def test_resnet_trunk_from_a_propagation_file_is_a_named_error(tmp_path):
    src = _prop_net()
    path = save_weights(part_state_dict(src, "propagation"), tmp_path / "prop.pt",
                        meta=weights_meta(src, "propagation"))
    with pytest.raises(WeightsMismatchError, match="holds no ResNet-18 trunk"):
        load_resnet_trunk(SwiftNetR18(3), path)


@pytest.mark.parametrize("version, message", [
    ("1", "has format_version '1'; expected an integer in 0..1"),
    (1.0, "has format_version 1.0"), (True, "has format_version True"), (-3, "format_version -3"),
    (99, "has format version 99; this gsvnet_ros reads up to 1")])
def test_format_version_of_another_type_or_range_is_a_corrupt_file(tmp_path, version, message):
    path = tmp_path / "w.pt"
    torch.save({"format": "gsvnet_ros.weights", "format_version": version, "meta": {},
                "state_dict": {}}, path)
    with pytest.raises(WeightsCorruptError, match=message.replace("(", r"\(").replace(".", r"\.")):
        read_weights(path)


@pytest.mark.parametrize("payload, message", [
    ({"format": "other", "meta": {}, "state_dict": {}}, "format is 'other'; expected 'gsvnet_ros.weights'"),
    ({"format": "gsvnet_ros.weights", "meta": [], "state_dict": {}}, "meta is []; expected a mapping"),
    ({"format": "gsvnet_ros.weights", "meta": {}, "state_dict": {"w": 3}},
     "state_dict entry 'w' is a int; expected a tensor"),
])
def test_a_bad_header_names_the_field(tmp_path, payload, message):
    path = tmp_path / "w.pt"
    torch.save(payload, path)
    with pytest.raises(WeightsCorruptError, match=message.replace("(", r"\(").replace("[", r"\[")):
        read_weights(path)


# ---- lineage: a propagation file names the keyframe file it was trained beside -------------------

def _lineage_pair(tmp_path, keyframe_bytes=b"keyframe A"):
    keyframe = tmp_path / "keyframe_a.pt"
    keyframe.write_bytes(keyframe_bytes)
    meta = {"keyframe_weights": "keyframe_a.pt", "keyframe_weights_sha256": weights_sha256(keyframe)}
    return keyframe, tmp_path / "propagation_a.pt", meta


def test_lineage_matches_the_keyframe_file_it_was_trained_beside(tmp_path):
    keyframe, propagation, meta = _lineage_pair(tmp_path)
    assert check_lineage(keyframe, propagation, meta)
    assert check_lineage(keyframe, propagation, {})  # no record (an older file): nothing to check


def test_another_keyframe_file_is_an_error_naming_both(tmp_path, caplog):
    keyframe, propagation, meta = _lineage_pair(tmp_path)
    other = tmp_path / "keyframe_b.pt"
    other.write_bytes(b"keyframe B")
    with pytest.raises(WeightsMismatchError) as info:
        check_lineage(other, propagation, meta)
    text = str(info.value)
    assert "propagation_a.pt" in text and "keyframe_a.pt (sha256 " + meta["keyframe_weights_sha256"][:12] \
        in text and str(other) in text and "runtime.allow_mismatched_weights" in text
    with caplog.at_level("WARNING", logger="gsvnet_ros.models.weights"):
        assert check_lineage(other, propagation, meta, allow_mismatch=True) is False
    assert "loading them anyway" in caplog.text and "keyframe_b.pt" in caplog.text


@pytest.mark.parametrize("recorded", ["abc", 5, ["x"], "A" * 64])
def test_a_malformed_lineage_record_is_a_corrupt_file(tmp_path, recorded):
    keyframe, propagation, meta = _lineage_pair(tmp_path)
    with pytest.raises(WeightsCorruptError, match="keyframe_weights_sha256 is"):
        check_lineage(keyframe, propagation, {**meta, "keyframe_weights_sha256": recorded})


def test_build_model_refuses_a_mismatched_pair_unless_allowed(tmp_path, caplog):
    from gsvnet_ros.backends import build_model
    from gsvnet_ros.config import load_config

    torch.manual_seed(0)
    cfg = ModelConfig(num_classes=3)
    src = GSVNet(cfg)
    key_a = save_weights(src.keyframe_net, tmp_path / "key_a.pt", meta=weights_meta(src, "keyframe"))
    with torch.no_grad():
        src.keyframe_net.logits.conv.weight.add_(1)
    key_b = save_weights(src.keyframe_net, tmp_path / "key_b.pt", meta=weights_meta(src, "keyframe"))
    prop = save_weights(part_state_dict(src, "propagation"), tmp_path / "prop.pt",
                        meta=weights_meta(src, "propagation", keyframe_weights=key_a.name,
                                          keyframe_weights_sha256=weights_sha256(key_a)))
    runtime = {"keyframe_weights": str(key_a), "propagation_weights": str(prop)}
    build_model(load_config(None, {"model": {"num_classes": 3}, "runtime": runtime}))
    runtime["keyframe_weights"] = str(key_b)
    with pytest.raises(WeightsMismatchError, match="trained beside keyframe weights key_a.pt"):
        build_model(load_config(None, {"model": {"num_classes": 3}, "runtime": runtime}))
    with caplog.at_level("WARNING"):
        build_model(load_config(None, {"model": {"num_classes": 3},
                                       "runtime": {**runtime, "allow_mismatched_weights": True}}))
    assert "key_b.pt" in caplog.text


def test_propagation_weights_are_used_only_with_the_flow_they_were_trained_with(tmp_path, caplog):
    from gsvnet_ros.backends import build_model
    from gsvnet_ros.config import load_config

    torch.manual_seed(0)
    paths = {}
    for flow in ("learned", "dis"):
        src = GSVNet(ModelConfig(num_classes=3, flow=flow))
        paths[flow] = save_weights(part_state_dict(src, "propagation"), tmp_path / f"{flow}.pt",
                                   meta=weights_meta(src, "propagation"))

    def build(flow, trained, **runtime):
        return build_model(load_config(None, {"model": {"num_classes": 3, "flow": flow}, "runtime": {
            "propagation_weights": str(paths[trained]), **runtime}}))

    build("dis", "dis")
    build("learned", "learned")
    with pytest.raises(WeightsMismatchError, match=r"dis\.pt were trained with model\.flow: 'dis', but "
                                                   r"the config says model\.flow: learned"):
        build("learned", "dis")
    with pytest.raises(WeightsMismatchError, match="model.flow: 'learned'"):
        build("dis", "learned")
    with caplog.at_level("WARNING"):
        build("dis", "learned", allow_mismatched_weights=True)
    assert "loading them anyway" in caplog.text


def test_shipped_propagation_files_name_their_keyframe_file():
    from pathlib import Path

    models = Path(__file__).resolve().parents[3] / "models"
    files = sorted(models.glob("propagation_*.pt"))
    if not files:
        pytest.skip("no shipped weights")
    for path in files:
        _, meta = read_weights(path)
        net = "bisenet_r18" if "bisenet" in path.name else "swiftnet_r18"
        assert meta["keyframe_weights"] == f"keyframe_{net}.pt"
        assert check_lineage(models / meta["keyframe_weights"], path, meta)
