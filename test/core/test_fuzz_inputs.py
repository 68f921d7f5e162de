"""Fuzzed hostile input: every file or message either loads or raises the project's own error.

Image messages (raw and compressed, duck-typed), rosbag2 metadata.yaml, config YAML and weight
files. Each example must give a result or the area's error type (ImageDecodeError, BagError,
ConfigError, WeightsError) with a one-line message that names the field at fault, never another
exception. Profiles "gsvnet-fuzz" (60 derandomized examples, every run) and "gsvnet-fuzz-long"
(2000 random examples, marked slow) are registered in test/core/conftest.py.
"""
import array
import math
import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import yaml

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from gsvnet_ros.bag import BagError, BagReader, BagWriter, bag_info  # noqa: E402
from gsvnet_ros.bag.typestore import IMAGE, make_header, make_image  # noqa: E402
from gsvnet_ros.codec import (DEFAULT_MAX_IMAGE_PIXELS, SUPPORTED_ENCODINGS,  # noqa: E402
                              ImageDecodeError, decode_compressed, decode_image, encode_image)
from gsvnet_ros.config import ConfigError, GSVNetConfig, load_config  # noqa: E402

FUZZ = settings(settings.get_profile("gsvnet-fuzz"))
LONG = settings(settings.get_profile("gsvnet-fuzz-long"))

# Values no field expects: wrong types, edge numbers, NUL, nesting.
ODD = st.one_of(st.none(), st.booleans(), st.floats(allow_nan=True, allow_infinity=True),
                st.text(max_size=6), st.sampled_from(["", "\0", "many", "1e23", "\xff"]),
                st.lists(st.integers(-3, 300), max_size=3), st.dictionaries(st.text(max_size=3),
                                                                            st.integers(), max_size=2))
WIDE_INTS = st.one_of(st.integers(-2**70, 2**70),
                      st.sampled_from([0, -1, 1, 255, 256, 1000, 1001, 2**31, 2**63 - 1, 2**63, 10**23]))


def _one_line(exc):
    text = str(exc)
    assert text and "\n" not in text, repr(text)
    return text


# ---- image messages ------------------------------------------------------------------------------

# Words an ImageDecodeError of each kind must contain: the field (or limit) at fault.
_IMAGE_FIELD_WORDS = {
    "encoding": ("encoding",), "size": ("size", "height", "width"), "step": ("step",),
    "data_length": ("data",), "endianness": ("big-endian",), "too_large": ("max_pixels",),
    "compressed": ("compressed", "jpeg", "png", "format"),
}


def _container(raw, kind):
    return {"bytes": raw, "bytearray": bytearray(raw), "list": list(raw),
            "array": array.array("B", raw), "memoryview": memoryview(raw),
            "ndarray": np.frombuffer(raw, np.uint8), "uint16": np.frombuffer(raw + b"\0", np.uint16)
            if len(raw) % 2 else np.frombuffer(raw, np.uint16), "str": raw.decode("latin-1"),
            "none": None, "nested": [list(raw[:2]), list(raw[2:3])],
            "floats": [float(b) for b in raw[:4]]}[kind]


@st.composite
def raw_images(draw):
    encoding = draw(st.one_of(st.sampled_from(SUPPORTED_ENCODINGS + ("mono16", "16UC1", "rgb16",
                                                                      "yuv422", "RGB8", "8UC1", "")),
                              ODD))
    height = draw(st.one_of(st.integers(1, 6), WIDE_INTS, ODD, st.integers(1, 6).map(np.uint32)))
    width = draw(st.one_of(st.integers(1, 6), WIDE_INTS, ODD, st.integers(1, 6).map(np.int64)))
    small = lambda v: int(v) if isinstance(v, (int, np.integer)) and 0 < v <= 64 else 2  # noqa: E731
    row = small(width) * 4
    step = draw(st.one_of(st.just(row + draw(st.integers(0, 3))), WIDE_INTS, ODD))
    length = small(step) * small(height) if isinstance(step, int) and 0 < step <= 256 else 8
    length = draw(st.one_of(st.just(length), st.integers(0, 80)))
    raw = draw(st.binary(min_size=length, max_size=length))
    kind = draw(st.sampled_from(["bytes"] * 6 + ["bytearray", "list", "array", "memoryview",
                                                  "ndarray", "uint16", "str", "none", "nested",
                                                  "floats"]))
    message = SimpleNamespace(height=height, width=width, encoding=encoding, step=step,
                              is_bigendian=draw(st.one_of(st.integers(0, 1), ODD)),
                              data=_container(raw, kind))
    return message, draw(st.one_of(st.just(DEFAULT_MAX_IMAGE_PIXELS), st.integers(1, 40)))


def _check_raw(case):
    message, max_pixels = case
    try:
        rgb = decode_image(message, max_pixels=max_pixels)
    except ImageDecodeError as exc:
        text = _one_line(exc).lower()
        assert any(word in text for word in _IMAGE_FIELD_WORDS[exc.kind]), (exc.kind, text)
    else:
        assert rgb.dtype == np.uint8 and rgb.shape == (message.height, message.width, 3)
        assert message.height * message.width <= max_pixels


def _jpeg_bytes(progressive=False):
    rgb = np.random.default_rng(1).integers(0, 256, (12, 20, 3), dtype=np.uint8)
    params = [cv2.IMWRITE_JPEG_PROGRESSIVE, 1] if progressive else []
    return cv2.imencode(".jpg", rgb, params)[1].tobytes()


_GOOD = {"jpeg": _jpeg_bytes(), "progressive": _jpeg_bytes(True),
         "png": cv2.imencode(".png", np.zeros((12, 20, 3), np.uint8))[1].tobytes(),
         "png16": cv2.imencode(".png", np.zeros((3, 5), np.uint16))[1].tobytes()}


def _set_size(data, width, height):
    if data.startswith(b"\x89PNG"):
        return data[:16] + (width % 2**32).to_bytes(4, "big") + (height % 2**32).to_bytes(4, "big") \
            + data[24:]
    at = max(data.find(b"\xff\xc0"), data.find(b"\xff\xc2"))
    if at < 0:
        return data
    return data[:at + 5] + (height % 65536).to_bytes(2, "big") + (width % 65536).to_bytes(2, "big") \
        + data[at + 9:]


@st.composite
def compressed_images(draw):
    fmt = draw(st.one_of(st.sampled_from(["jpeg", "png", "jpg", "", "rgb8; jpeg compressed bgr8",
                                          "bgr8; png compressed bgr8", "16UC1; compressedDepth png",
                                          "h264", "JPEG", "png jpeg", "theora"]),
                         st.text(max_size=12), ODD))
    data = _GOOD[draw(st.sampled_from(sorted(_GOOD)))]
    action = draw(st.sampled_from(["keep", "truncate", "flip", "size", "insert", "random", "magic"]))
    if action == "truncate":
        data = data[:draw(st.integers(0, len(data)))]
    elif action == "flip":
        for _ in range(draw(st.integers(1, 4))):
            at = draw(st.integers(0, min(63, len(data) - 1)))
            data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1:]
    elif action == "size":
        dims = st.one_of(st.integers(0, 64), st.integers(0, 70000))
        data = _set_size(data, draw(dims), draw(dims))
    elif action == "insert":
        at = draw(st.integers(2, 40))
        data = data[:at] + draw(st.binary(max_size=40)) + data[at:]
    elif action == "random":
        data = draw(st.binary(max_size=200))
    elif action == "magic":
        data = draw(st.sampled_from([b"\xff\xd8", b"\x89PNG\r\n\x1a\n"])) + draw(st.binary(max_size=200))
    container = draw(st.sampled_from(["bytes", "bytes", "ndarray", "list", "memoryview", "str"]))
    message = SimpleNamespace(format=fmt, data=_container(data, container))
    return message, draw(st.one_of(st.just(DEFAULT_MAX_IMAGE_PIXELS), st.integers(1, 400)))


def _check_compressed(case):
    message, max_pixels = case
    try:
        rgb = decode_compressed(message, max_pixels=max_pixels)
    except ImageDecodeError as exc:
        assert exc.kind in ("compressed", "size", "too_large"), exc.kind
        text = _one_line(exc).lower()
        assert any(word in text for word in _IMAGE_FIELD_WORDS[exc.kind]), (exc.kind, text)
    else:
        assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
        assert rgb.shape[0] * rgb.shape[1] <= max_pixels


@FUZZ
@given(raw_images())
def test_fuzz_raw_images(case):
    _check_raw(case)


@FUZZ
@given(compressed_images())
def test_fuzz_compressed_images(case):
    _check_compressed(case)


@pytest.mark.slow
@LONG
@given(raw_images())
def test_fuzz_raw_images_long(case):
    _check_raw(case)


@pytest.mark.slow
@LONG
@given(compressed_images())
def test_fuzz_compressed_images_long(case):
    _check_compressed(case)


# ---- rosbag2 metadata.yaml -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_bag(tmp_path_factory):
    """A 3-frame sqlite3 bag and its metadata as a dict."""
    bag = tmp_path_factory.mktemp("fuzzbag") / "bag"
    frame = encode_image(np.zeros((4, 6, 3), np.uint8), "rgb8")
    with BagWriter(bag) as writer:
        writer.add_topic("/cam/image", IMAGE)
        for i in range(3):
            writer.write("/cam/image", 10 + i,
                         make_image(writer.typestore, make_header(writer.typestore, 10 + i, "c"), frame))
    return bag, yaml.safe_load((bag / "metadata.yaml").read_text())


def _paths(value, prefix=()):
    """Every (path, value) in a nested dict/list, the root included."""
    yield prefix, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, prefix + (key,))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _paths(item, prefix + (i,))


@st.composite
def metadata_edits(draw, base):
    """(edited metadata object, path of the edit) or (raw text, None)."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.one_of(st.text(max_size=80), st.binary(max_size=80))), None
    edited = yaml.safe_load(yaml.safe_dump(base))  # a deep copy
    path = draw(st.sampled_from([p for p, _ in _paths(edited)]))
    parent = edited
    for key in path[:-1]:
        parent = parent[key]
    action = draw(st.sampled_from(["replace", "replace", "delete", "duplicate"]))
    value = draw(st.one_of(ODD, WIDE_INTS, st.text(max_size=10)))
    if not path:
        return value, path
    if action == "delete":
        del parent[path[-1]]
    elif action == "duplicate" and isinstance(parent, list):
        parent.append(parent[path[-1]])
    else:
        parent[path[-1]] = value
    return edited, path


def _check_metadata(bag, edit):
    edited, path = edit
    with tempfile.TemporaryDirectory() as work:
        copy = Path(work) / "bag"
        shutil.copytree(bag, copy)
        meta = copy / "metadata.yaml"
        if isinstance(edited, bytes):
            meta.write_bytes(edited)
        elif isinstance(edited, str) and path is None:
            meta.write_text(edited)
        else:
            meta.write_text(yaml.safe_dump({"rosbag2_bagfile_information": edited}
                                           if path else edited))
        try:
            info = bag_info(copy)
            with BagReader(copy) as reader:
                for topic in reader.topics:
                    for _ in reader.messages([topic.name]):
                        pass
        except BagError as exc:
            text = _one_line(exc)
            fields = [str(key) for key in (path or ()) if isinstance(key, str)]
            assert str(copy) in text, text
            assert not fields or any(name in text for name in fields) or any(
                word in text for word in ("does not match the storage", "truncated or corrupt",
                                          "metadata.yaml has no", "is missing")), (path, text)
        else:
            assert info.message_count >= 0


@FUZZ
@given(data=st.data())
def test_fuzz_bag_metadata(small_bag, data):
    bag, base = small_bag
    _check_metadata(bag, data.draw(metadata_edits(base["rosbag2_bagfile_information"])))


@pytest.mark.slow
@LONG
@given(data=st.data())
def test_fuzz_bag_metadata_long(small_bag, data):
    bag, base = small_bag
    _check_metadata(bag, data.draw(metadata_edits(base["rosbag2_bagfile_information"])))


# ---- config YAML ---------------------------------------------------------------------------------

_CONFIG_KEYS = {section: [f.name for f in __import__("dataclasses").fields(type(getattr(GSVNetConfig(),
                                                                                         section)))]
                for section in ("model", "runtime", "stream")}


@st.composite
def config_documents(draw):
    """A config file's bytes: YAML mappings of known and unknown keys with hostile values."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=60))
    value = st.one_of(ODD, WIDE_INTS, st.floats(), st.sampled_from(["cpu", "cuda:1", "auto", "1/8",
                                                                    "bisenet_r18", "paper"]))
    document = {}
    for section in draw(st.lists(st.sampled_from(["model", "runtime", "stream", "modle", "x"]),
                                 max_size=3, unique=True)):
        if draw(st.integers(0, 7)) == 0:
            document[section] = draw(value)
            continue
        keys = _CONFIG_KEYS.get(section, []) + ["bogus"]
        document[section] = {key: draw(value) for key in
                             draw(st.lists(st.sampled_from(keys), max_size=4, unique=True))}
    return yaml.safe_dump(document, allow_unicode=True).encode()


def _check_config(raw):
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "c.yaml"
        path.write_bytes(raw)
        try:
            cfg = load_config(path)
        except ConfigError as exc:
            text = _one_line(exc)
            assert "config" in text, text
            try:
                document = yaml.safe_load(raw.decode("utf-8"))
            except (UnicodeDecodeError, yaml.YAMLError):
                return  # the file itself is named
            names = [str(k) for k in document] if isinstance(document, dict) else []
            names += [f"{s}.{k}" for s, v in (document.items() if isinstance(document, dict) else ())
                      if isinstance(v, dict) for k in v]
            assert str(path) in text or any(f"'{name}" in text for name in names), text
        else:
            assert isinstance(cfg, GSVNetConfig)
            assert 1 <= cfg.stream.keyframe_interval <= 1000
            assert math.isfinite(cfg.stream.max_gap_s)


@FUZZ
@given(config_documents())
def test_fuzz_config_yaml(raw):
    _check_config(raw)


@pytest.mark.slow
@LONG
@given(config_documents())
def test_fuzz_config_yaml_long(raw):
    _check_config(raw)


# ---- weight files --------------------------------------------------------------------------------

torch = pytest.importorskip("torch")
from gsvnet_ros.models.weights import (FORMAT, WeightsError, check_lineage,  # noqa: E402
                                       load_weights, read_weights)

_MISSING = object()
_KEYFRAME_BYTES = b"keyframe"
_SHA = __import__("hashlib").sha256(_KEYFRAME_BYTES).hexdigest()  # the lineage of the base payload


@st.composite
def weight_payloads(draw):
    """(payload dict or other object, the field edited)."""
    state = {"weight": torch.zeros(2, 2), "bias": torch.zeros(2)}
    meta = {"architecture": "Linear", "part": "keyframe", "num_classes": 2,
            "keyframe_weights": "k.pt", "keyframe_weights_sha256": _SHA}
    payload = {"format": FORMAT, "format_version": 1, "meta": meta, "state_dict": state}
    field = draw(st.sampled_from(["none", "format", "format_version", "meta", "part",
                                  "keyframe_weights_sha256", "state_dict", "tensor", "payload"]))
    value = draw(st.one_of(ODD, WIDE_INTS, st.just(_MISSING)))
    if field == "payload":
        return value if value is not _MISSING else [], field
    if field in ("part", "keyframe_weights_sha256"):
        target = meta
    elif field == "tensor":
        choice = draw(st.sampled_from(["nan", "shape", "extra", "missing", "dtype"]))
        if choice == "nan":
            state["bias"] = torch.tensor([float("nan"), 0.0])
        elif choice == "shape":
            state["weight"] = torch.zeros(3, 2)
        elif choice == "extra":
            state["extra"] = torch.zeros(1)
        elif choice == "missing":
            del state["bias"]
        else:
            state["weight"] = torch.zeros(2, 2, dtype=torch.int64)
        return payload, field
    else:
        target = payload
    if field != "none":
        if value is _MISSING:
            target.pop(field, None)
        else:
            target[field] = value
    return payload, field


def _check_weights(case, keyframe_file):
    payload, field = case
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "w.pt"
        torch.save(payload, path)
        module = torch.nn.Linear(2, 2)
        try:
            state, meta = read_weights(path)
            meta = load_weights(module, path, part="keyframe")
            check_lineage(keyframe_file, path, meta)
        except WeightsError as exc:
            text = _one_line(exc)
            assert str(path) in text, text
            words = {"format_version": ("format version", "format_version"), "format": ("format",),
                     "keyframe_weights_sha256": ("keyframe_weights_sha256", "trained beside"),
                     "part": ("part",), "meta": ("meta",),
                     "state_dict": ("state_dict", "missing keys", "unexpected keys")}
            assert any(word in text for word in words.get(field, ("",))), (field, text)
        else:
            assert set(state) == {"weight", "bias"}


@pytest.fixture(scope="module")
def keyframe_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("kf") / "k.pt"
    path.write_bytes(_KEYFRAME_BYTES)
    return path


@FUZZ
@given(case=weight_payloads())
def test_fuzz_weight_files(case, keyframe_file):
    _check_weights(case, keyframe_file)


@pytest.mark.slow
@LONG
@given(case=weight_payloads())
def test_fuzz_weight_files_long(case, keyframe_file):
    _check_weights(case, keyframe_file)
