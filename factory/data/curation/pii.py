"""PII: tagged columns hashed with a keyed HMAC or dropped; free text scanned for PII patterns.

A column tagged ``pii: hash`` in ``data.curation.columns`` is replaced by the hex
HMAC-SHA256 of each value's string form under a secret key: equal values stay equal (joins
and group-bys still work, a category is still a category) and nobody without the key can
test a guess (an unkeyed SHA-256 of a phone number falls to a dictionary of every phone
number). ``pii: drop`` removes the column. Nulls stay null, and so does ``""``: every reader
takes an empty string for a missing value (the server's protocol, the preprocessing, the ONNX
graph), so hashing it into a real digest would make a known level offline of what is missing online.
A dictionary (categorical) column is hashed and scanned as its values.

The key comes from ``FACTORY_PII_KEY``, or the file ``FACTORY_PII_KEY_FILE`` names (a mounted secret),
as the same variables serve training, reports, serving and batch scoring (``load_key``); it is never logged and
never named in an error beyond the variable or file that holds it. Rotating the key changes
every hash: a model trained under one key scores rows hashed under another as unseen levels.

``scan`` counts emails, phone numbers, card numbers and IBANs in string columns: candidate
spans by regex, then the checks that tell a real one from a look-alike (Luhn for cards,
mod-97 for IBANs through ``python-stdnum``; libphonenumber's matcher through
``phonenumbers``). Why not Presidio: see docs/data.md ("PII").

Example:
    >>> key = load_key()                                  # FACTORY_PII_KEY
    >>> apply(table, {"customer_email": "hash", "customer_name": "drop"}, key)
    >>> scan(table, ["note"])                             # {"note": {"email": 2, "card": 1}}
"""
from __future__ import annotations

import hashlib
import hmac
import os
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

import pyarrow as pa

from factory.errors import ConfigError, DataError

#: The environment variable holding the key.
KEY_ENV = "FACTORY_PII_KEY"
#: What a tagged column may ask for.
MODES = ("hash", "drop")
#: Shortest key accepted: a short key lets anyone holding a hash try every key.
MIN_KEY_BYTES = 16
#: What ``scan`` counts.
KINDS = ("email", "phone", "card", "iban")
#: Regions whose national-format numbers (no ``+<country>``) ``scan`` recognizes as phones;
#: international numbers are found whatever the region.
PHONE_REGIONS = ("US", "GB", "DE", "FR")

_HOW_TO_MAKE_ONE = "python -c 'import secrets; print(secrets.token_hex(32))'"


def load_key(env: str = KEY_ENV, file: str | os.PathLike | None = None) -> bytes:
    """The HMAC key: the contents of ``file`` when given, else the environment variable ``env``, else
    the file named by ``<env>_FILE`` (``FACTORY_PII_KEY_FILE``), as ``governance.encryption.load_key``.

    The key is the text's UTF-8 bytes, surrounding whitespace stripped (a hex or base64 string
    is used as it is, not decoded).

    Raises:
        DataError: no key (naming ``env`` and how to make one), an unreadable key file, or a key
            shorter than 16 bytes. The message never holds the key.
    """
    if file is None and not os.environ.get(env, "").strip() and os.environ.get(f"{env}_FILE"):
        file = os.environ[f"{env}_FILE"]
    if file is not None:
        try:
            text = Path(file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise DataError(f"pii key file {str(file)!r}: cannot be read ({type(e).__name__})") from None
        where = f"pii key file {str(file)!r}"
    else:
        text = os.environ.get(env, "")
        if not text.strip():
            raise DataError(f"columns tagged 'pii: hash' need a key: set {env}, or {env}_FILE to a file holding it "
                            f"(serving and scoring: the key training used; a new one: {_HOW_TO_MAKE_ONE})")
        where = f"${env}"
    key = text.strip().encode("utf-8")
    if len(key) < MIN_KEY_BYTES:
        raise DataError(f"{where}: the pii key holds {len(key)} byte(s); it needs at least {MIN_KEY_BYTES} "
                        f"(make one with {_HOW_TO_MAKE_ONE})")
    return key


def value_text(value: Any) -> str:
    """A value's string form, as hashed: a float holding an integer is written as that integer
    (``5551234.0`` and ``5551234`` hash alike, as Arrow's and JSON's numbers come either way)."""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return str(value)


def hash_value(value: Any, key: bytes) -> str | None:
    """The hex HMAC-SHA256 of ``value``'s string form under ``key``; ``None`` for ``None`` and ``""``
    (missing, as every reader takes it)."""
    text = None if value is None else value_text(value)
    if not text:
        return None
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


def hash_values(values: Iterable[Any], key: bytes) -> list[str | None]:
    """``hash_value`` of each value; the keyed state is set up once per call (about 5 us a value here)."""
    base = hmac.new(key, digestmod=hashlib.sha256)
    out: list[str | None] = []
    for value in values:
        text = value if value is None or isinstance(value, str) else value_text(value)
        if not text:  # None or "": missing
            out.append(None)
            continue
        digest = base.copy()
        digest.update(text.encode("utf-8"))
        out.append(digest.hexdigest())
    return out


def check_columns(columns: Mapping[str, str]) -> dict[str, str]:
    """``columns`` as a plain dict, each mode checked.

    Raises:
        ConfigError: a mode other than ``hash`` or ``drop``, naming the column.
    """
    for name, mode in columns.items():
        if mode not in MODES:
            raise ConfigError(f"data.curation.columns.{name}.pii: {mode!r} is not one of {', '.join(MODES)}")
    return dict(columns)


def tagged(data_cfg: Any) -> dict[str, str]:
    """``{column: "hash" | "drop"}`` from a data config's ``curation.columns.*.pii`` (a mapping or
    DictConfig: a run's ``data`` node, a registered model's ``config.data``); ``{}`` without."""
    curation = _get(data_cfg, "curation")
    columns = _get(curation, "columns") or {}
    found = {str(name): _get(spec, "pii") for name, spec in columns.items()}
    return check_columns({name: mode for name, mode in found.items() if mode is not None})


def _get(node: Any, key: str) -> Any:
    if node is None:
        return None
    try:
        return node.get(key)
    except AttributeError:
        return None


def apply(table: pa.Table, columns: Mapping[str, str], key: bytes | None, *, strict: bool = True) -> pa.Table:
    """``table`` with each tagged column hashed (``"hash"``) or removed (``"drop"``).

    Args:
        table: any Arrow table (or record batch); other columns pass through untouched.
        columns: column -> ``"hash"`` or ``"drop"``.
        key: the HMAC key (``load_key``); may be None when nothing is hashed.
        strict: a tagged column the table lacks is an error (a misspelt tag would leave the
            real column in the clear); False skips it (a request or scoring file that does not
            carry a dropped column).

    Returns:
        A new table; a hashed column is a string column of 64-hex-digit digests, nulls and ``""``
        null. A dictionary column is hashed as its values.

    Raises:
        ConfigError: a mode other than hash or drop.
        DataError: a tagged column the table lacks (``strict``), or hashing without a key.
    """
    columns = check_columns(columns)
    names = list(table.schema.names)
    absent = [name for name in columns if name not in names]
    if absent and strict:
        raise DataError(f"pii: column(s) {', '.join(map(repr, absent))} tagged in data.curation.columns are not "
                        f"in the table (its columns: {', '.join(names)})")
    if key is None and any(mode == "hash" and name in names for name, mode in columns.items()):
        raise DataError(f"pii: hashing column(s) needs a key: set {KEY_ENV}")
    out = table
    for name, mode in columns.items():
        if name not in names:
            continue
        i = out.schema.get_field_index(name)
        if mode == "drop":
            out = out.remove_column(i)
        else:
            out = out.set_column(i, pa.field(name, pa.string()), _hashed(out.column(i), key))
    return out


def _hashed(column: pa.Array | pa.ChunkedArray, key: bytes) -> pa.Array:
    """Each distinct value hashed once, then spread back over the rows (a Python call per distinct value)."""
    import pyarrow.compute as pc

    if pa.types.is_dictionary(column.type):  # index_in takes no dictionary value set (ArrowTypeError)
        column = column.cast(column.type.value_type)
    distinct = pc.unique(column)
    digests = pa.array(hash_values(distinct.to_pylist(), key), pa.string())
    return digests.take(pc.index_in(column, value_set=distinct))


# --- scanning free text ---------------------------------------------------------------------------

# The prefilter (RE2, run by Arrow over a column's distinct values): only values with an ``@`` or
# seven digits in a row (separators allowed; every card, IBAN and phone number has them) reach the
# Python checks below, so a column of names or categories costs one vectorized pass.
_CANDIDATE = r"@|\d(?:[\s().\-/]*\d){6,}"
_PHONE_DIGITS = re.compile(r"\d(?:[\s().\-/]*\d){6,}")
_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
_CARD = re.compile(r"(?<![\d\-])\d(?:[ -]?\d){12,18}(?![\d\-])")
# Card brands by leading digits (IIN ranges) with their lengths: a Luhn-valid 16-digit id that
# starts like no card (1 in 10 random ids pass Luhn) is not counted.
_CARD_BRANDS = (
    (re.compile(r"4"), (13, 16, 19)),                                      # Visa
    (re.compile(r"5[1-5]|2(?:2[2-9]|[3-6]\d|7[01]|720)"), (16,)),          # Mastercard
    (re.compile(r"3[47]"), (15,)),                                         # American Express
    (re.compile(r"6(?:011|5|4[4-9])|62"), (16, 17, 18, 19)),               # Discover, UnionPay
    (re.compile(r"35(?:2[89]|[3-8]\d)"), (16, 17, 18, 19)),                # JCB
    (re.compile(r"3(?:0[0-5]|[68])"), (14, 16, 19)),                       # Diners Club
)
# Compact (DE89370400440532013000) or printed in groups of four (DE89 3704 0044 0532 0130 00).
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,4})?)\b")


def scan(table: pa.Table, columns: list[str], regions: Iterable[str] = PHONE_REGIONS) -> dict[str, dict[str, int]]:
    """Rows of each string column holding an email, phone number, card number or IBAN.

    A card number counts when its digits (spaces or dashes between them allowed) pass the Luhn
    check and start like a card brand of that length; an IBAN when its mod-97 check and its
    country's format hold (``stdnum.iban``); a phone number when libphonenumber calls it valid
    (international format anywhere, national format in ``regions``). Digits already taken by a
    card or IBAN are not counted again as a phone number.

    Args:
        table: the table to scan.
        columns: the columns to scan; non-string columns are skipped.
        regions: ISO country codes whose national phone formats count.

    Returns:
        ``{column: {kind: rows}}`` for the columns and kinds found at least once (strict JSON).
    """
    import pyarrow.compute as pc

    regions = tuple(regions)
    found: dict[str, dict[str, int]] = {}
    for name in columns:
        if name not in table.schema.names:
            raise DataError(f"pii scan: no column {name!r} (the table's columns: {', '.join(table.schema.names)})")
        column = table.column(name)
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            continue
        counts = pc.value_counts(column)  # distinct values and their rows: each value checked once
        values, rows = counts.field("values"), counts.field("counts")
        if values.null_count:
            keep = pc.is_valid(values)
            values, rows = values.filter(keep), rows.filter(keep)
        candidate = pc.match_substring_regex(values, _CANDIDATE)
        by_kind: dict[str, int] = {}
        for text, n in zip(values.filter(candidate).to_pylist(), rows.filter(candidate).to_pylist()):
            for kind in kinds_in(text, regions):
                by_kind[kind] = by_kind.get(kind, 0) + n
        if by_kind:
            found[name] = {kind: by_kind[kind] for kind in KINDS if kind in by_kind}
    return found


def kinds_in(text: str, regions: Iterable[str] = PHONE_REGIONS) -> set[str]:
    """The kinds of PII in one string (see ``scan``)."""
    kinds = set()
    rest = text
    for match in _EMAIL.finditer(text):
        kinds.add("email")
        rest = rest.replace(match.group(), " ")
    for match in _IBAN.finditer(rest):
        if _valid_iban(match.group()):
            kinds.add("iban")
            rest = rest.replace(match.group(), " ")
    for match in _CARD.finditer(rest):
        if _valid_card(re.sub(r"[ -]", "", match.group())):
            kinds.add("card")
            rest = rest.replace(match.group(), " ")
    if _PHONE_DIGITS.search(rest) and _has_phone(rest, regions):
        kinds.add("phone")
    return kinds


def _valid_card(digits: str) -> bool:
    from stdnum import luhn

    return any(prefix.match(digits) and len(digits) in lengths for prefix, lengths in _CARD_BRANDS) \
        and luhn.is_valid(digits)


def _valid_iban(printed: str) -> bool:
    """A match may run on into the next word (``... 0130 00 PAID``): shorter prefixes are tried too."""
    from stdnum import iban

    groups = printed.split(" ")
    return any(iban.is_valid("".join(groups[:end])) for end in range(len(groups), 0, -1))


def _has_phone(text: str, regions: tuple[str, ...]) -> bool:
    import phonenumbers

    return any(next(iter(phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID)),
                    None) is not None for region in regions)
