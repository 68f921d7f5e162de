"""Message classes from the rosbags typestore, checked as Humble's rosidl_python does (§7).

Each class has `__slots__`, a keyword-only constructor (unknown kwargs -> AssertionError), typed
setters (float fields reject int, ints are range-checked, `byte` is length-1 bytes), numeric
sequences stored as `array.array`, numeric fixed arrays as numpy, other sequences as lists.
`to_cdr`/`from_cdr` round-trip a message through the typestore's CDR serialiser: that is how the
fake graph "sends" a message, so received `uint8[]` arrive as `array.array('B')`, never bytes.
"""
from __future__ import annotations

import array
import collections.abc
import types
from collections import UserList, UserString
from typing import Any

import numpy as np
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.base import Nodetype

TYPESTORE = get_typestore(Stores.ROS2_HUMBLE)

# vision_msgs 4.x (branch ros2) and std_srvs are not in the rosbags store: their definitions, as in
# RCLPY_SURFACE.md §4 and §7.
_EXTRA_DEFINITIONS = {
    "vision_msgs/msg/VisionClass": "uint16 class_id\nstring class_name\n",
    "vision_msgs/msg/LabelInfo": "std_msgs/Header header\nvision_msgs/VisionClass[] class_map\n"
                                 "float32 threshold\n",
    "std_srvs/srv/Trigger_Request": "",
    "std_srvs/srv/Trigger_Response": "bool success\nstring message\n",
    "std_srvs/srv/SetBool_Request": "bool data\n",
    "std_srvs/srv/SetBool_Response": "bool success\nstring message\n",
    "std_srvs/srv/Empty_Request": "",
    "std_srvs/srv/Empty_Response": "",
}
for _name, _text in _EXTRA_DEFINITIONS.items():
    TYPESTORE.register(get_types_from_msg(_text, _name))

_INT_RANGES = {
    "int8": (-2**7, 2**7), "uint8": (0, 2**8), "int16": (-2**15, 2**15), "uint16": (0, 2**16),
    "int32": (-2**31, 2**31), "uint32": (0, 2**32), "int64": (-2**63, 2**63), "uint64": (0, 2**64),
    "char": (0, 2**8),
}
_TYPECODES = {"int8": "b", "uint8": "B", "int16": "h", "uint16": "H", "int32": "i", "uint32": "I",
              "int64": "q", "uint64": "Q", "float32": "f", "float64": "d", "char": "B"}
_DTYPES = {"int8": np.int8, "uint8": np.uint8, "int16": np.int16, "uint16": np.uint16,
           "int32": np.int32, "uint32": np.uint32, "int64": np.int64, "uint64": np.uint64,
           "float32": np.float32, "float64": np.float64}
_CLASSES: dict[str, type] = {}


def register_msg_text(typename: str, text: str) -> None:
    """Add a definition (e.g. gsvnet_ros_msgs/msg/SegmentationInfo from msg/) to the store."""
    if typename not in TYPESTORE.fielddefs:
        TYPESTORE.register(get_types_from_msg(text, typename))


def _is_sequence(value: Any) -> bool:
    return (isinstance(value, (collections.abc.Sequence, collections.abc.Set, UserList))
            and not isinstance(value, (str, UserString)))


def _check_scalar(typename: str, value: Any, what: str) -> None:
    if typename == "bool":
        assert isinstance(value, bool), f"The '{what}' field must be of type 'bool'"
    elif typename == "byte":
        assert isinstance(value, bytes) and len(value) == 1, \
            f"The '{what}' field must be of type 'bytes' of length 1"
    elif typename in ("float32", "float64"):
        assert isinstance(value, float), f"The '{what}' field must be of type 'float'"
    elif typename in ("string", "wstring"):
        assert isinstance(value, str), f"The '{what}' field must be of type 'str'"
    else:
        low, high = _INT_RANGES[typename]
        assert isinstance(value, int), f"The '{what}' field must be of type 'int'"
        assert low <= value < high, f"The '{what}' field must be an integer in [{low}, {high - 1}]"


def _default_scalar(typename: str) -> Any:
    if typename == "bool":
        return False
    if typename == "byte":
        return b"\x00"
    if typename in ("float32", "float64"):
        return 0.0
    if typename in ("string", "wstring"):
        return ""
    return 0


class _Field:
    """How one field is defaulted, checked and converted."""

    def __init__(self, name: str, desc: tuple) -> None:
        self.name = name
        self.kind, detail = desc
        self.elem_kind = self.elem = None
        self.count = 0
        if self.kind == Nodetype.BASE:
            self.elem, self.bound = detail
        elif self.kind == Nodetype.NAME:
            self.elem = detail
        else:
            (self.elem_kind, elem), self.count = detail
            self.elem = elem[0] if self.elem_kind == Nodetype.BASE else elem

    @property
    def numeric_elems(self) -> bool:
        return self.elem_kind == Nodetype.BASE and self.elem in _TYPECODES

    def type_string(self) -> str:
        if self.kind == Nodetype.BASE:
            return self.elem
        base = self.elem.replace("/msg/", "/") if self.elem_kind == Nodetype.NAME or \
            self.kind == Nodetype.NAME else self.elem
        if self.kind == Nodetype.NAME:
            return base
        if self.kind == Nodetype.ARRAY:
            return f"{base}[{self.count}]"
        return f"sequence<{base}, {self.count}>" if self.count else f"sequence<{base}>"

    def default(self) -> Any:
        if self.kind == Nodetype.BASE:
            return _default_scalar(self.elem)
        if self.kind == Nodetype.NAME:
            return message_class(self.elem)()
        if self.kind == Nodetype.ARRAY:
            if self.numeric_elems:
                return np.zeros(self.count, _DTYPES[self.elem])
            make = (lambda: message_class(self.elem)()) if self.elem_kind == Nodetype.NAME else \
                (lambda: _default_scalar(self.elem))
            return [make() for _ in range(self.count)]
        return array.array(_TYPECODES[self.elem]) if self.numeric_elems else []

    def _check_elem(self, value: Any) -> None:
        if self.elem_kind == Nodetype.NAME:
            assert isinstance(value, message_class(self.elem)), \
                f"The '{self.name}' field must be a set or sequence with each value of type " \
                f"'{self.elem.split('/')[-1]}'"
        else:
            _check_scalar(self.elem, value, self.name)

    def convert(self, value: Any) -> Any:
        """Check `value` (Humble rules) and return what the setter stores."""
        if self.kind == Nodetype.BASE:
            _check_scalar(self.elem, value, self.name)
            if self.bound:
                assert len(value) <= self.bound, f"The '{self.name}' field must be <= {self.bound}"
            return value
        if self.kind == Nodetype.NAME:
            assert isinstance(value, message_class(self.elem)), \
                f"The '{self.name}' field must be a sub message of type " \
                f"'{self.elem.split('/')[-1]}'"
            return value
        if self.kind == Nodetype.ARRAY and self.numeric_elems:
            dtype = _DTYPES[self.elem]
            if isinstance(value, np.ndarray):
                assert value.dtype == dtype, \
                    f"The '{self.name}' numpy.ndarray() must have the dtype of '{np.dtype(dtype)}'"
                assert value.size == self.count, \
                    f"The '{self.name}' numpy.ndarray() must have a size of {self.count}"
                return value
            assert _is_sequence(value) and len(value) == self.count, \
                f"The '{self.name}' field must be a sequence of length {self.count}"
            for v in value:
                self._check_elem(v)
            return np.array(value, dtype=dtype)
        if self.numeric_elems:  # sequence -> array.array
            code = _TYPECODES[self.elem]
            if isinstance(value, array.array):
                assert value.typecode == code, \
                    f"The '{self.name}' array.array() must have the type code of '{code}'"
                result = value
            else:
                assert _is_sequence(value), \
                    f"The '{self.name}' field must be a set or sequence, got {type(value).__name__}"
                if not isinstance(value, (bytes, bytearray)):  # bytes are always in uint8 range
                    for v in value:
                        self._check_elem(v)
                result = array.array(code, value)
        else:
            assert _is_sequence(value), \
                f"The '{self.name}' field must be a set or sequence, got {type(value).__name__}"
            for v in value:
                self._check_elem(v)
            result = list(value)
        if self.kind == Nodetype.ARRAY:
            assert len(result) == self.count, \
                f"The '{self.name}' field must have {self.count} items"
        elif self.count:
            assert len(result) <= self.count, \
                f"The '{self.name}' field must be a sequence with length <= {self.count}"
        return result


class _MessageBase:
    """Common behaviour of generated classes (rosidl_python `_msg.py.em`)."""

    __slots__ = ()
    _FIELDS: tuple[_Field, ...] = ()
    _TYPENAME = ""

    def __init__(self, **kwargs: Any) -> None:
        names = {f.name for f in self._FIELDS}
        assert all(k in names for k in kwargs), \
            "Invalid arguments passed to constructor: %s" % ", ".join(sorted(set(kwargs) - names))
        for f in self._FIELDS:
            setattr(self, f.name, kwargs[f.name] if f.name in kwargs else f.default())

    @classmethod
    def get_fields_and_field_types(cls) -> dict[str, str]:
        return {f.name: f.type_string() for f in cls._FIELDS}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, self.__class__):
            return False
        for f in self._FIELDS:
            a, b = getattr(self, f.name), getattr(other, f.name)
            if isinstance(a, np.ndarray):
                if not np.array_equal(a, b):
                    return False
            elif a != b:
                return False
        return True

    def __repr__(self) -> str:
        parts = ", ".join(f"{f.name}={getattr(self, f.name)!r:.60}" for f in self._FIELDS)
        return f"{self._TYPENAME.replace('/msg/', '.msg.').replace('/', '.')}({parts})"


def _make_property(fld: _Field) -> property:
    slot = "_" + fld.name

    def getter(self: Any) -> Any:
        return getattr(self, slot)

    def setter(self: Any, value: Any) -> None:
        object.__setattr__(self, slot, fld.convert(value))

    return property(getter, setter)


def message_class(typename: str) -> type:
    """The generated class for 'pkg/msg/Name' (or 'pkg/srv/Name_Request')."""
    cls = _CLASSES.get(typename)
    if cls is not None:
        return cls
    consts, fielddefs = TYPESTORE.fielddefs[typename]
    fields = tuple(_Field(name, desc) for name, desc in fielddefs)
    namespace: dict[str, Any] = {
        "__slots__": tuple("_" + f.name for f in fields),
        "_FIELDS": fields,
        "_TYPENAME": typename,
    }
    for f in fields:
        namespace[f.name] = _make_property(f)
    for cname, ctype, cvalue in consts:
        namespace[cname] = bytes([cvalue]) if ctype == "byte" else cvalue
    short = typename.rsplit("/", 1)[-1]
    cls = type(short, (_MessageBase,), namespace)
    cls.__module__ = typename.rsplit("/", 1)[0].replace("/", ".")
    _CLASSES[typename] = cls
    return cls


class _Service:
    """A service type: `Srv.Request`, `Srv.Response` (rosidl_python srv classes)."""


def service_class(typename: str) -> type:
    """The service class 'pkg/srv/Name' with Request and Response."""
    cls = _CLASSES.get(typename)
    if cls is None:
        cls = type(typename.rsplit("/", 1)[-1], (_Service,), {
            "Request": message_class(typename + "_Request"),
            "Response": message_class(typename + "_Response"),
        })
        _CLASSES[typename] = cls
    return cls


def build_module(name: str, prefix: str) -> types.ModuleType:
    """A module (e.g. 'sensor_msgs.msg') holding every class of the store under `prefix`."""
    module = types.ModuleType(name)
    for typename in list(TYPESTORE.fielddefs):
        if typename.startswith(prefix) and not typename.endswith(("_Request", "_Response")):
            setattr(module, typename.rsplit("/", 1)[-1], message_class(typename))
        elif typename.startswith(prefix) and typename.endswith("_Request"):
            base = typename[: -len("_Request")]
            setattr(module, base.rsplit("/", 1)[-1], service_class(base))
    return module


# ---- wire format: CDR round trip through the rosbags typestore -------------------------------

def _to_store(value: Any, fld: _Field) -> Any:
    if fld.kind == Nodetype.BASE:
        return value[0] if fld.elem == "byte" else value
    if fld.kind == Nodetype.NAME:
        return to_store(value)
    if fld.numeric_elems:
        if isinstance(value, array.array):
            return np.frombuffer(value, dtype=_DTYPES[fld.elem]).copy()
        return np.asarray(value, dtype=_DTYPES[fld.elem])
    if fld.elem_kind == Nodetype.NAME:
        return [to_store(v) for v in value]
    if fld.elem == "byte":
        return [v[0] for v in value]
    return list(value)


def to_store(msg: Any) -> Any:
    """Convert a generated message to the rosbags dataclass of the same type."""
    cls = TYPESTORE.types[msg._TYPENAME]
    return cls(**{f.name: _to_store(getattr(msg, f.name), f) for f in msg._FIELDS})


def _from_store(value: Any, fld: _Field) -> Any:
    if fld.kind == Nodetype.BASE:
        return bytes([value]) if fld.elem == "byte" else value
    if fld.kind == Nodetype.NAME:
        return from_store(value, fld.elem)
    if fld.numeric_elems:
        if fld.kind == Nodetype.ARRAY:
            return np.array(value, dtype=_DTYPES[fld.elem])
        out = array.array(_TYPECODES[fld.elem])
        out.frombytes(np.ascontiguousarray(value, dtype=_DTYPES[fld.elem]).tobytes())
        return out
    if fld.elem_kind == Nodetype.NAME:
        return [from_store(v, fld.elem) for v in value]
    if fld.elem == "byte":
        return [bytes([v]) for v in value]
    return list(value)


def from_store(obj: Any, typename: str) -> Any:
    """Convert a rosbags dataclass back to the generated message class."""
    cls = message_class(typename)
    msg = cls.__new__(cls)
    for f in cls._FIELDS:
        object.__setattr__(msg, "_" + f.name, _from_store(getattr(obj, f.name), f))
    return msg


def round_trip(msg: Any) -> Any:
    """Serialise to CDR and back: what a subscriber receives for a published message."""
    raw = TYPESTORE.serialize_cdr(to_store(msg), msg._TYPENAME)
    return from_store(TYPESTORE.deserialize_cdr(raw, msg._TYPENAME), msg._TYPENAME)
