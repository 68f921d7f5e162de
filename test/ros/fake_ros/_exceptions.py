"""rclpy.exceptions (names and messages as in rclpy 3.3 / 7.1)."""
from __future__ import annotations


class NotInitializedException(Exception):
    def __init__(self, cause: str = "") -> None:
        super().__init__(f"rclpy.init() has not been called {cause}".strip())


class InvalidNodeNameException(ValueError):
    pass


class InvalidNamespaceException(ValueError):
    pass


class InvalidTopicNameException(ValueError):
    pass


class ParameterException(Exception):
    def __init__(self, error_msg: str, parameters) -> None:
        super().__init__(f"{error_msg}: {parameters}")


class ParameterNotDeclaredException(ParameterException):
    def __init__(self, parameters) -> None:
        super().__init__("Invalid access to undeclared parameter(s)", parameters)


class ParameterAlreadyDeclaredException(ParameterException):
    def __init__(self, parameters) -> None:
        super().__init__("Parameter(s) already declared", parameters)


class InvalidParameterException(ParameterException):
    def __init__(self, parameter) -> None:
        super().__init__("Invalid parameter name", parameter)


class InvalidParameterTypeException(ParameterException):
    def __init__(self, desired_parameter, expected_type) -> None:
        super().__init__(
            f"Trying to set parameter '{desired_parameter.name}' to '{desired_parameter.value}' of "
            f"type '{desired_parameter.type_.name}', expecting type '{expected_type}'",
            desired_parameter.name)


class InvalidParameterValueException(ParameterException):
    def __init__(self, parameter, value, reason) -> None:
        super().__init__(f"Invalid parameter value ({value}) for parameter. Reason: {reason}",
                         parameter)


class ParameterUninitializedException(ParameterException):
    def __init__(self, parameter_name) -> None:
        super().__init__("The parameter is not initialized", parameter_name)


class InvalidQoSProfileException(Exception):
    pass


class ROSInterruptException(Exception):
    pass
