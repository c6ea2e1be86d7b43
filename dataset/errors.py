"""The one exception type for bad input data; entry scripts print it as a single line."""


class DataError(Exception):
    """Bad or missing input: the message names the file or flag and the fix."""


def first_line_of(err: BaseException) -> str:
    """The DataError message, also when a DataLoader worker re-raised it inside a traceback dump."""
    text = str(err).strip()
    marker = f"{DataError.__module__}.{DataError.__name__}: "
    if marker in text:  # worker re-raise: "Caught DataError in DataLoader worker ... <traceback> ... marker msg"
        text = text.rsplit(marker, 1)[1]
    elif "DataError: " in text:
        text = text.rsplit("DataError: ", 1)[1]
    return text.strip()
