from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class InputOperation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INPUT_OPERATION_UNSPECIFIED: _ClassVar[InputOperation]
    INPUT_OPERATION_SET: _ClassVar[InputOperation]
    INPUT_OPERATION_DELETE: _ClassVar[InputOperation]
INPUT_OPERATION_UNSPECIFIED: InputOperation
INPUT_OPERATION_SET: InputOperation
INPUT_OPERATION_DELETE: InputOperation

class Input(_message.Message):
    __slots__ = ("op", "key", "value")
    OP_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    op: InputOperation
    key: str
    value: bytes
    def __init__(self, op: _Optional[_Union[InputOperation, str]] = ..., key: _Optional[str] = ..., value: _Optional[bytes] = ...) -> None: ...

class MembershipChange(_message.Message):
    __slots__ = ("id", "joined")
    ID_FIELD_NUMBER: _ClassVar[int]
    JOINED_FIELD_NUMBER: _ClassVar[int]
    id: str
    joined: bool
    def __init__(self, id: _Optional[str] = ..., joined: _Optional[bool] = ...) -> None: ...

class Ack(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ObserveStateChangeParams(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ObserveMembershipChangeParams(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
