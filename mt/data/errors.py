"""The one exception type of the data pipeline: a bad corpus or setting, explained in one line."""

from mt.errors import MTError


class DataError(MTError):
    """Bad input data or data settings; the message names the file or key and what to do about it."""

    def __init__(self, message: str) -> None:
        super().__init__(message.replace("\r", " ").replace("\n", " "))  # one line, whatever was interpolated
