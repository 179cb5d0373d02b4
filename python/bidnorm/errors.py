"""The one exception class of the package: a bn_error's fields, or an exit status of the CLI."""
from typing import Optional

# bn_status values (bidnorm/error.h); never renumbered.
OK = 0
EUSAGE = -1
ENOMEM = -2
EIO = -3
ECORRUPT = -4
ERULES = -5
EREJECT = -6
EREJECTRATE = -7
EINTERNAL = -8

_EXIT_CODES = {EUSAGE: 2, ERULES: 4, EREJECTRATE: 3, EIO: 5, ECORRUPT: 5}


class BidnormError(Exception):
    """An error from libbidnorm or the bidnorm command.

    Attributes are those of the C library's bn_error: code (a negative bn_status), reason (the
    reject reason's name when code is EREJECT, else ""), source, line, column, field, message.
    str() is the library's own formatting ("source:line: field 'f': message").
    """

    def __init__(self, code: int, message: str, *, reason: str = "", source: str = "", line: int = 0,
                 column: int = 0, field: str = "", text: Optional[str] = None) -> None:
        super().__init__(text if text is not None else message)
        self.code = code
        self.reason = reason
        self.source = source
        self.line = line
        self.column = column
        self.field = field
        self.message = message

    @property
    def exit_code(self) -> int:
        """The exit code the bidnorm command gives this error (see the README's table)."""
        return _EXIT_CODES.get(self.code, 1)


class Rejected(BidnormError):
    """A record the rules reject (code EREJECT); reason is e.g. "invalid_json", "missing_required"."""
