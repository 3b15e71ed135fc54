"""Text files as spreadsheets and editors save them: one rule for every layer.

A byte-order mark decides (UTF-8, UTF-16, UTF-32); without one the bytes must be UTF-8, else they are
read as Windows-1252 (which equals latin-1 for printable characters) and the caller warns. NUL bytes
without a byte-order mark (UTF-16 saved without one, or a binary file) and bytes that Windows-1252
leaves undefined are refused: encodings are never guessed beyond this.
"""

from __future__ import annotations

import codecs

__all__ = ["FALLBACK_ENCODING", "TextDecodeError", "decode_text"]

#: Encoding of text without a byte-order mark that is not UTF-8.
FALLBACK_ENCODING = "cp1252"
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


class TextDecodeError(ValueError):
    """The bytes are no text under the rule of this module.

    Attributes
    ----------
    line : int
        1-based line (counted in bytes up to the problem) where the problem lies.
    """

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


def _line(data: bytes, offset: int) -> int:
    return data[:offset].count(b"\n") + 1


def decode_text(data: bytes) -> tuple[str, str]:
    """The text of ``data`` and the encoding it was read with.

    Examples
    --------
    >>> decode_text("Zürich".encode("cp1252"))
    ('Zürich', 'cp1252')
    >>> decode_text(codecs.BOM_UTF8 + b"a\\tb")
    ('a\\tb', 'utf-8-sig')

    Raises
    ------
    TextDecodeError
        When the bytes are not text in any accepted encoding (the message says why, not what to do:
        the caller knows which file it is and how it should be saved).
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding), encoding
            except UnicodeDecodeError as error:
                raise TextDecodeError(
                    f"starts with a {encoding.upper()} byte-order mark but is not valid "
                    f"{encoding.upper()} (byte {error.start})",
                    _line(data, error.start),
                ) from None
    if b"\x00" in data:
        raise TextDecodeError(
            "holds NUL bytes: not a text file, or UTF-16 saved without a byte-order mark",
            _line(data, data.index(b"\x00")),
        )
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode(FALLBACK_ENCODING), FALLBACK_ENCODING
    except UnicodeDecodeError as error:
        raise TextDecodeError(
            f"neither UTF-8 nor Windows-1252 text (byte 0x{data[error.start]:02x} at offset "
            f"{error.start})",
            _line(data, error.start),
        ) from None
