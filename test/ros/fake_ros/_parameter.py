"""rclpy.parameter.Parameter (class body as in Humble/Jazzy; RCLPY_SURFACE §1.3)."""
from __future__ import annotations

import array
from enum import Enum
from typing import Any, Optional

from . import _msgs


class Parameter:
    """A named, typed parameter value."""

    class Type(Enum):
        NOT_SET = 0
        BOOL = 1
        INTEGER = 2
        DOUBLE = 3
        STRING = 4
        BYTE_ARRAY = 5
        BOOL_ARRAY = 6
        INTEGER_ARRAY = 7
        DOUBLE_ARRAY = 8
        STRING_ARRAY = 9

        @classmethod
        def from_parameter_value(cls, value: Any) -> "Parameter.Type":
            T = Parameter.Type
            if value is None:
                return T.NOT_SET
            if isinstance(value, bool):
                return T.BOOL
            if isinstance(value, int):
                return T.INTEGER
            if isinstance(value, float):
                return T.DOUBLE
            if isinstance(value, str):
                return T.STRING
            if isinstance(value, (list, tuple, array.array)):
                # all() over an empty sequence is True: [] infers as BYTE_ARRAY (as in rclpy).
                if all(isinstance(v, bytes) for v in value):
                    return T.BYTE_ARRAY
                if all(isinstance(v, bool) for v in value):
                    return T.BOOL_ARRAY
                if all(isinstance(v, int) for v in value):
                    return T.INTEGER_ARRAY
                if all(isinstance(v, float) for v in value):
                    return T.DOUBLE_ARRAY
                if all(isinstance(v, str) for v in value):
                    return T.STRING_ARRAY
            raise TypeError(f"The given value is not one of the allowed types '{value}'.")

        def check(self, value: Any) -> bool:
            T = Parameter.Type
            seq = (list, tuple, array.array)
            return {
                T.NOT_SET: lambda: value is None,
                T.BOOL: lambda: isinstance(value, bool),
                T.INTEGER: lambda: isinstance(value, int),
                T.DOUBLE: lambda: isinstance(value, float),
                T.STRING: lambda: isinstance(value, str),
                T.BYTE_ARRAY: lambda: isinstance(value, seq) and all(isinstance(v, bytes) and
                                                                       len(v) == 1 for v in value),
                T.BOOL_ARRAY: lambda: isinstance(value, seq) and all(isinstance(v, bool)
                                                                       for v in value),
                T.INTEGER_ARRAY: lambda: isinstance(value, seq) and all(isinstance(v, int)
                                                                          for v in value),
                T.DOUBLE_ARRAY: lambda: isinstance(value, seq) and all(isinstance(v, float)
                                                                         for v in value),
                T.STRING_ARRAY: lambda: isinstance(value, seq) and all(isinstance(v, str)
                                                                         for v in value),
            }[self]()

    def __init__(self, name: str, type_: Optional["Parameter.Type"] = None, value: Any = None):
        if type_ is None:
            type_ = Parameter.Type.from_parameter_value(value)
        if not isinstance(type_, Parameter.Type):
            raise TypeError("type must be an instance of '{}'".format(repr(Parameter.Type)))
        if not type_.check(value):
            raise ValueError(f"Type '{type_}' and value '{value}' do not agree")
        self._type_ = type_
        self._name = name
        self._value = value

    @property
    def name(self) -> str:
        return self._name

    @property
    def type_(self) -> "Parameter.Type":
        return self._type_

    @property
    def value(self) -> Any:
        return self._value

    def get_parameter_value(self) -> Any:
        ParameterValue = _msgs.message_class("rcl_interfaces/msg/ParameterValue")
        T = Parameter.Type
        field = {T.BOOL: "bool_value", T.INTEGER: "integer_value", T.DOUBLE: "double_value",
                 T.STRING: "string_value", T.BYTE_ARRAY: "byte_array_value",
                 T.BOOL_ARRAY: "bool_array_value", T.INTEGER_ARRAY: "integer_array_value",
                 T.DOUBLE_ARRAY: "double_array_value",
                 T.STRING_ARRAY: "string_array_value"}.get(self.type_)
        kwargs = {"type": self.type_.value}
        if field is not None:
            kwargs[field] = self.value
        return ParameterValue(**kwargs)

    def to_parameter_msg(self) -> Any:
        Msg = _msgs.message_class("rcl_interfaces/msg/Parameter")
        return Msg(name=self.name, value=self.get_parameter_value())

    def __repr__(self) -> str:
        return f"Parameter({self.name!r}, {self.type_}, {self.value!r})"
