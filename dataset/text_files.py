"""Reading the lists a user gives (split, class, trial and annotation files) as text: UTF-8 with or without a
BOM, and UTF-16 with its BOM (what some Windows editors save); anything else is one DataError that names the
file and the encoding to save it in, not a UnicodeDecodeError traceback."""
import codecs
import io
from pathlib import Path

from .errors import DataError

SAVE_AS = "save it as UTF-8 (e.g. iconv -f <its encoding> -t UTF-8 FILE > NEW), or as UTF-16 with a BOM"


def read_list_text(path: Path) -> str:
    data = Path(path).read_bytes()
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"  # the BOM says which byte order
    elif b"\x00" in data[:4096]:
        raise DataError(f"{path} holds NUL bytes: UTF-16 (or another wide encoding) without a BOM? {SAVE_AS}")
    else:
        encoding = "utf-8-sig"  # drops the BOM that some shipped class lists start with
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as err:
        raise DataError(f"{path} is not {encoding.upper().replace('-SIG', '')} text (a byte at offset {err.start} "
                        f"cannot be read): {SAVE_AS}") from None


def open_list(path: Path) -> io.StringIO:
    """The file's text as a stream for csv.reader (a context manager, like open(path, newline=''))."""
    return io.StringIO(read_list_text(path), newline="")
