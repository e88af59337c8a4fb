"""Personal data in text: e-mail addresses, phone numbers, IP addresses,
credit-card numbers and IBANs, found and masked with TensorFlow ops.

`data.cleaning.pii` decides what happens to them: `keep` (the default)
leaves the text alone, `mask` replaces each one with a typed placeholder
(`PLACEHOLDERS`: `<EMAIL>`, `<PHONE>`, `<IP>`, `<CREDIT_CARD>`, `<IBAN>`), `drop`
removes the whole document (`kerasllm.data.sources`, `paired_text`).

Everything here is graph ops, so it runs inside tf.data (and on tf.data
service workers) with no Python per document. Written here rather than
taken from a library: the PII libraries (Presidio, scrubadub) and the
checksum libraries (python-stdnum) work on Python strings, one at a time,
which would put a Python step and the GIL into the input pipeline.

How a kind is found. RE2 (TensorFlow's regex engine) has no lookaround,
so "not part of a longer number or word" cannot be said in the pattern.
Each kind therefore has a *candidate* pattern: the kind's shape plus the
word characters, dots or dashes glued to it on either side. Every
candidate is then *checked*: the whole candidate must have the kind's
exact shape (so anything glued to it rejects it) and pass the kind's
checksum or count:

- e-mail: `local@domain.tld` (a letter top-level domain); regex only.
- IBAN: two capital letters, two check digits, 11-30 letters or digits
  (in groups of four or not), 15-34 in all, and the ISO 13616 mod-97
  check (remainder 1).
- credit card: 13-19 digits, plain or in the printed groups (4-4-4-x with
  spaces or dashes, 4-6-5 / 4-6-4), and the Luhn check.
- phone: `+` and a country code with 8-15 digits in all; `(area) local`;
  North-American 3-3-4 with one separator; or a national number with its
  trunk 0 in groups (`06 12 34 56 78`, `020 7946 0958`), 9-15 digits.
  A bare run of digits is not taken for a phone number.
- IP: IPv4 with every part 0-255 (no leading zeros), or IPv6 (eight groups,
  or compressed with `::` and at least one digit).

What stays (look-alikes): dates (`2024-01-15`, `15.01.2024`: too few
digits, no phone shape), version numbers with three parts (`2.14.0`), five
parts (`1.2.3.4.5`), a part above 255, a `v` glued on (`v1.2.3.4`) or a
`version`/`ver`/`release`/`build` before them; order and invoice numbers
glued to letters (`ORD-4111111111111111`, `INV-555-123-4567`) or in no
phone shape; 13-19 digit numbers that fail the Luhn check; IBAN-shaped
strings that fail mod 97. A four-part version number with every part
0-255 and no such word before it (`1.2.3.4`) is taken for an IPv4
address: the two cannot be told apart by their text, and masking a
version is the safer mistake.

The kinds are searched in the order of `KINDS`: a number that is both an
IBAN and Luhn-valid is counted once, as an IBAN, and a card number is not
taken for a phone number.

Example:
    masked, counts = find_pii(tf.constant(["mail bob@example.com"]))
    masked.numpy()[0]  # b"mail <EMAIL>"
    counts.numpy()[0]  # [1, 0, 0, 0, 0] (by KINDS)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import tensorflow as tf

KINDS = ("email", "iban", "credit_card", "phone", "ip")
PLACEHOLDERS = {kind: f"<{kind.upper()}>" for kind in KINDS}

# Marks the candidates for the split that follows; removed from the text
# first (NUL is a control character that `strip_control` drops anyway).
_MARK = "\x00"

# What may be glued to a candidate (then it is not one): word characters,
# or a dot or dash followed by one (the rest of a longer number).
_LEFT = r"(?:\w|\w[.-])*"
_RIGHT = r"(?:\w|[.-]\w)*"

_EMAIL = (r"[A-Za-z0-9._%+-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
          r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.[A-Za-z]{2,24}")
_IBAN = r"[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?"
_CARD = (r"[0-9]{13,19}|[0-9]{4}(?:-[0-9]{4}){2}-[0-9]{1,7}|[0-9]{4}(?: [0-9]{4}){2} [0-9]{1,7}"
         r"|[0-9]{4}[ -][0-9]{6}[ -][0-9]{4,5}")
_PHONE = (r"\+[1-9][0-9]{0,2}(?:[ .-]?(?:\([0-9]{1,4}\)|[0-9]{1,5})){1,6}"
          r"|\([0-9]{2,5}\)[ .-]?[0-9]{2,4}(?:[ .-]?[0-9]{2,4}){1,3}"
          r"|[0-9]{3}-[0-9]{3}-[0-9]{4}|[0-9]{3}\.[0-9]{3}\.[0-9]{4}|[0-9]{3} [0-9]{3} [0-9]{4}"
          r"|0[0-9]{1,4}(?:[ .-][0-9]{2,4}){1,4}")
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
_HEX = r"[0-9A-Fa-f]{1,4}"
_IPV6 = rf"(?:{_HEX}:){{7}}{_HEX}|(?:{_HEX}(?::{_HEX})*)?::(?:{_HEX}(?::{_HEX})*)?"
# IP candidates: any dotted quad (the check wants parts 0-255), and a
# version word before the number makes it a version, not an address.
_IP_CANDIDATE = (r"(?:(?i:\b(?:version|release|build|ver))[:.]?[ ]?|(?:\w|\w[.:])*)"
                 rf"(?:[0-9]{{1,3}}(?:\.[0-9]{{1,3}}){{3}}|{_IPV6})(?:\w|\.\w)*")


def _digits(candidates: tf.Tensor) -> tf.RaggedTensor:
    """The decimal digits of each candidate as ints, in order."""
    only = tf.strings.regex_replace(candidates, "[^0-9]", "")
    return tf.strings.unicode_decode(only, "UTF-8") - ord("0")


def luhn_valid(candidates: tf.Tensor) -> tf.Tensor:
    """Whether each string's digits (others ignored) pass the Luhn check.

    Args:
        candidates: 1-D string tensor.

    Returns:
        bool[n]; an empty digit string fails.

    Example:
        luhn_valid(tf.constant(["4111 1111 1111 1111", "4111 1111 1111 1112"]))  # [True, False]
    """
    digits = _digits(candidates)
    lengths = digits.row_lengths()
    rows = digits.value_rowids()
    # Every second digit counted from the right is doubled (9 subtracted
    # when that makes two digits).
    from_right = tf.gather(lengths, rows) - 1 - tf.ragged.range(lengths).flat_values
    d = digits.flat_values
    doubled = tf.where(from_right % 2 == 1, tf.where(d * 2 > 9, d * 2 - 9, d * 2), d)
    total = tf.math.unsorted_segment_sum(doubled, rows, tf.size(candidates))
    return tf.logical_and(total % 10 == 0, lengths > 0)


# 10**k mod 97 for the digit positions of the longest IBAN (34 characters,
# letters counting two digits).
_POWERS_MOD_97 = [pow(10, k, 97) for k in range(70)]


def iban_valid(candidates: tf.Tensor) -> tf.Tensor:
    """Whether each string (spaces ignored) is 15-34 letters and digits that
    pass the IBAN check: the first four characters moved to the end, letters
    read as 10-35, the number mod 97 is 1 (ISO 13616).

    Args:
        candidates: 1-D string tensor of upper-case IBAN-shaped text.

    Returns:
        bool[n].

    Example:
        iban_valid(tf.constant(["DE89 3704 0044 0532 0130 00", "DE89 3704 0044 0532 0130 01"]))  # [True, False]
    """
    compact = tf.strings.upper(tf.strings.regex_replace(candidates, " ", ""))
    chars = tf.strings.unicode_decode(compact, "UTF-8")
    rotated = tf.concat([chars[:, 4:], chars[:, :4]], axis=1)
    c = rotated.flat_values
    letter = c >= ord("A")
    value = tf.where(letter, c - ord("A") + 10, c - ord("0"))
    width = tf.where(letter, 2, 1)  # digits the character stands for
    # Each character's lowest digit's position from the right of its row:
    # the widths to its right (a reverse exclusive sum, restarted per row).
    after = tf.math.cumsum(width, reverse=True, exclusive=True)
    row_ends = tf.gather(rotated.row_limits() - 1, rotated.value_rowids())
    position = after - tf.gather(after, row_ends)
    terms = value * tf.gather(tf.constant(_POWERS_MOD_97, tf.int32), tf.minimum(position, len(_POWERS_MOD_97) - 1))
    total = tf.math.unsorted_segment_sum(terms % 97, rotated.value_rowids(), tf.size(candidates))
    length = rotated.row_lengths()
    return tf.logical_and(total % 97 == 1, tf.logical_and(length >= 15, length <= 34))


def _shaped(pattern: str) -> Callable[[tf.Tensor], tf.Tensor]:
    return lambda candidates: tf.strings.regex_full_match(candidates, pattern)


def _digit_count(candidates: tf.Tensor, low: int, high: int) -> tf.Tensor:
    n = tf.strings.length(tf.strings.regex_replace(candidates, "[^0-9]", ""))
    return tf.logical_and(n >= low, n <= high)


def _phone(candidates):
    return tf.logical_and(_shaped(_PHONE)(candidates), _digit_count(candidates, 9, 15))


def _card(candidates):
    return tf.logical_and(_shaped(_CARD)(candidates), luhn_valid(candidates))


def _iban(candidates):
    return tf.logical_and(_shaped(_IBAN)(candidates), iban_valid(candidates))


def _ip(candidates):
    v6 = tf.logical_and(_shaped(_IPV6)(candidates), tf.strings.regex_full_match(candidates, r"(?s).*[0-9].*"))
    return tf.logical_or(_shaped(_IPV4)(candidates), v6)


@dataclass(frozen=True)
class _Kind:
    candidate: str  # RE2: the kind's shape with what is glued to it
    check: Callable[[tf.Tensor], tf.Tensor]  # candidates -> bool


_FINDERS = {
    "email": _Kind(_EMAIL, lambda c: tf.ones_like(c, tf.bool)),
    "iban": _Kind(rf"\w*(?:{_IBAN})\w*", _iban),
    "credit_card": _Kind(rf"{_LEFT}(?:{_CARD}){_RIGHT}", _card),
    "phone": _Kind(rf"{_LEFT}(?:{_PHONE}){_RIGHT}", _phone),
    "ip": _Kind(_IP_CANDIDATE, _ip),
}


def _replace_kind(texts: tf.Tensor, kind: str) -> tuple[tf.Tensor, tf.Tensor]:
    """One kind over 1-D `texts`: (texts with it masked, how many per text)."""
    finder = _FINDERS[kind]
    # Candidates are wrapped in marks and split out: the pieces of a text
    # alternate plain text, candidate, plain text, ...
    pieces = tf.strings.split(tf.strings.regex_replace(texts, finder.candidate, _MARK + r"\0" + _MARK), _MARK)
    flat = pieces.flat_values
    where = tf.where(tf.ragged.range(pieces.row_lengths()).flat_values % 2 == 1)
    found = tf.boolean_mask(where, finder.check(tf.gather_nd(flat, where)))
    flat = tf.tensor_scatter_nd_update(flat, found, tf.fill(tf.shape(found)[:1], PLACEHOLDERS[kind]))
    owner = tf.gather(pieces.value_rowids(), found[:, 0])
    counts = tf.math.unsorted_segment_sum(tf.ones_like(owner, tf.int32), owner, tf.size(texts))
    return tf.strings.reduce_join(pieces.with_flat_values(flat), axis=-1), counts


# Any candidate of any kind: the texts without one (nearly all, in most
# corpora) skip the per-kind work, which is dozens of small ops per kind.
_ANY_CANDIDATE = "(?s).*(?:" + "|".join(f"(?:{finder.candidate})" for finder in _FINDERS.values()) + ").*"


def find_pii(texts: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Masks personal data and counts it, per text.

    Args:
        texts: string tensor of any shape (UTF-8).

    Returns:
        `(masked, counts)`: the texts with each find replaced by its
        placeholder (and NUL characters removed), and int32 counts of shape
        `texts.shape + [len(KINDS)]`, one column per kind in `KINDS` order.

    Example:
        masked, counts = find_pii(tf.constant(["call +44 20 7946 0958"]))
        masked.numpy()[0]  # b"call <PHONE>"
        counts.numpy()[0]  # [0, 0, 0, 1, 0]
    """
    texts = tf.convert_to_tensor(texts, tf.string)
    shape = tf.shape(texts)
    flat = tf.strings.regex_replace(tf.reshape(texts, [-1]), _MARK, "")
    rows = tf.where(tf.strings.regex_full_match(flat, _ANY_CANDIDATE))

    def search():
        some = tf.gather_nd(flat, rows)
        columns = []
        for kind in KINDS:
            some, counts = _replace_kind(some, kind)
            columns.append(counts)
        return (tf.tensor_scatter_nd_update(flat, rows, some),
                tf.scatter_nd(rows, tf.stack(columns, axis=-1), [tf.size(flat), len(KINDS)]))

    def none():
        return flat, tf.zeros([tf.size(flat), len(KINDS)], tf.int32)

    flat, counts = tf.cond(tf.size(rows) > 0, search, none)
    return tf.reshape(flat, shape), tf.reshape(counts, tf.concat([shape, [len(KINDS)]], axis=0))


def has_pii(texts: tf.Tensor) -> tf.Tensor:
    """Whether each text holds any personal data of `KINDS`.

    Args:
        texts: string tensor of any shape.

    Returns:
        bool tensor of `texts`' shape.

    Example:
        has_pii(tf.constant(["IP 10.0.0.1", "version 1.2.3.4"]))  # [True, False]
    """
    return tf.reduce_any(find_pii(texts)[1] > 0, axis=-1)
