"""Masking personal data in a complaint's text before it leaves its origin node.

The reporter's identity travels only sealed (node.sealing), but reporters often
repeat it in the body ("hubungi saya di 0812...", "NIK saya ..."), and leaks
seen in practice came from exactly such detail. ``redact`` is a pure function:
text in, masked text and a list of findings out; the caller decides what to
store and what to send.

What is masked (kinds, and the mask that replaces them):
- ``reporter_nik``   the reporter's own NIK, digit-wise: any spaces, dots or
  dashes between the digits (up to two characters, parentheses too)
                                       -> "[NIK disamarkan]"
- ``reporter_phone`` the reporter's own phone, digit-wise, with +62 / 62 / 0 /
  no prefix treated as equal           -> "[nomor telepon disamarkan]"
- ``reporter_name``  the reporter's full name, case-insensitive, whole words,
  any whitespace between the words     -> "[nama disamarkan]"
- ``reporter_address`` the reporter's address, its words in a row with any
  punctuation or spacing between them ("Jl Cempaka No 12"): whole, and each of
  its comma-separated parts that holds a number ("Jl. Cempaka No. 12 RT 04")
                                       -> "[alamat disamarkan]"
- ``email``          any e-mail address, and the reporter's own e-mail matched
  literally (case-insensitive)         -> "[email disamarkan]"
- ``nik``            anything shaped like a NIK: exactly 16 digits, contiguous or
  in groups of 2+ digits joined by one space, dot or dash ("6401 0445 1182
  0001", "64.01.04.451182.0001"). A 16-digit family-card (KK) number has the
  same shape and is masked too      -> "[NIK disamarkan]"
- ``phone``          an Indonesian mobile number: +62 / 62 / 0, then 8, then 8-11
  more digits, a space, or a dot, dash or slash (spaces around it too),
  allowed between digits, or the area part in brackets ("(0812) 9999 8888",
  "+62(812)99998888")
                                       -> "[nomor telepon disamarkan]"

Digits are digits in any script and width ("６４０１", Arabic-Indic), spaces are any
space (a no-break space too, and an invisible character such as a zero-width
space or a soft hyphen), dashes any dash ("–") and slashes the fraction and
division slashes: the text is scanned in a folded copy of the same length
(``_fold``), so findings point into the original.

What is left alone, on purpose: money ("Rp750.000", and no digit run right after
"Rp" is ever taken for a NIK), times ("19.00"), dates, distances ("2 km"),
RT/RW numbers, years. Thousand-grouped numbers can never look like a NIK: a
16-digit number grouped by thousands starts with a 1-digit group, and NIK
groups must have 2 digits or more. A phone match never ends inside a digit
group or a dash-joined code ("62-812-3456-7890-1234" is not a phone); a space
may separate it from a following number ("081345678910 6401...": both masked),
erring on the side of masking.

Overlaps: the longest match wins; at equal length the reporter-specific kind
wins over the generic one. Finding offsets refer to the original text.
"""
from __future__ import annotations

import bisect
import functools
import re
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

MASKS = {
    "reporter_nik": "[NIK disamarkan]",
    "nik": "[NIK disamarkan]",
    "reporter_phone": "[nomor telepon disamarkan]",
    "phone": "[nomor telepon disamarkan]",
    "email": "[email disamarkan]",
    "reporter_name": "[nama disamarkan]",
    "reporter_address": "[alamat disamarkan]",
}
# Lower wins at equal length: the reporter's own data is the more specific finding.
_PRIORITY = {"reporter_nik": 0, "reporter_phone": 0, "reporter_name": 0, "reporter_address": 0, "email": 1,
             "nik": 2, "phone": 2}

_DIGIT_SEP = r"[ .\-()/_]{0,3}"  # between two digits of the reporter's own numbers: "(0812) 0000 - 0101"
_PHONE_PREFIX = r"(?:\+[ ]?62|\(\+?62\)|62|0)"
_SEP = r"(?: ?[.\-/] ?| )?"   # between two digits of a phone: "0813 - 4444", "0813.4444", "0813 4444"
_PHONE_RE = re.compile(r"(?<![\w+])(?:" + _PHONE_PREFIX + _SEP + r"8(?:" + _SEP + r"[0-9]){8,11}"
                       r"|(?:\((?:0|\+?62 ?)|(?:\+?62 ?)?\(0?)8[0-9]{2,3}\) ?[0-9](?:" + _SEP + r"[0-9]){4,8})"
                       r"(?![0-9]| ?[.\-/] ?[0-9])")
_EMAIL_RE = re.compile(
    r"(?<![\w.+\-])[A-Za-z0-9][A-Za-z0-9._%+\-]*@[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}(?![\w@])"
)
# A maximal run of digit groups joined by single separators; NIK windows are found inside it.
_DIGIT_RUN_RE = re.compile(r"(?<![0-9])[0-9]+(?:[ .\-][0-9]+)*(?![0-9])")
_GROUP_RE = re.compile(r"[0-9]+")
_CURRENCY_BEFORE = re.compile(r"(?i)(?<![a-z])rp\.?\s?$")  # searched in the 4 chars before a run
_NIK_DIGITS = 16
_MIN_REPORTER_DIGITS = 6  # shorter "own numbers" would mask ordinary numbers
_MIN_ADDRESS_PART = 8     # an address part shorter than this ("No. 5") would mask ordinary text
_HAS_DIGIT = re.compile(r"[0-9]")
_WORD = re.compile(r"\w+")


class _Folding(dict):
    """``str.translate`` table, filled as characters are met: any decimal digit to its ASCII digit, any
    space or invisible format character to " ", any dash to "-", the fraction and division slashes to "/",
    a full-width form ("＋", "（") to its ASCII character; the rest kept. One character to one, so offsets
    stay. Only the first few thousand characters met are remembered."""

    def __missing__(self, code: int) -> str:
        ch = chr(code)
        kind = unicodedata.category(ch)
        if kind == "Nd":
            out = str(unicodedata.decimal(ch))
        elif kind in ("Zs", "Cf"):   # (a zero-width space or a soft hyphen between digits: a space here)
            out = " "
        elif kind == "Pd" or ch == "\u2212":
            out = "-"
        elif ch in "\u2044\u2215":   # fraction and division slashes
            out = "/"
        else:
            compat = unicodedata.normalize("NFKC", ch)
            out = compat if len(compat) == 1 and compat.isascii() else ch
        if len(self) < 4096:
            self[code] = out
        return out


_FOLDING = _Folding()


def _fold(text: str) -> str:
    """``text`` with digits, spaces and dashes of every script as ASCII (``_Folding``), the same length."""
    return text if text.isascii() else text.translate(_FOLDING)


@dataclass(frozen=True)
class Finding:
    kind: str  # a key of MASKS
    start: int  # offsets in the ORIGINAL text
    end: int


@dataclass(frozen=True)
class Redaction:
    text: str  # the masked text
    findings: tuple[Finding, ...]  # what was masked, in text order

    @property
    def changed(self) -> bool:
        return bool(self.findings)


_NON_DIGITS = re.compile(r"[^0-9]+")
_NON_DIGIT_BYTES = bytes(b for b in range(128) if not 48 <= b <= 57)


def _digits(value: str) -> str:
    """The ASCII digits of ``value``, in order (for ASCII text, a byte translation: ten times the regex)."""
    if value.isascii():
        return value.encode("ascii").translate(None, _NON_DIGIT_BYTES).decode("ascii")
    return _NON_DIGITS.sub("", value)


def _national_number(phone: str) -> str:
    """Digits after the +62 / 62 / 0 prefix: '+62 812-0000-0101' -> '81200000101'."""
    digits = _digits(phone)
    if digits.startswith("62") and phone.lstrip().startswith(("+", "62", "(")):
        return digits[2:]
    return digits[1:] if digits.startswith("0") else digits


def _digitwise(digits: str) -> str:
    return _DIGIT_SEP.join(digits)


def _regex_findings(pattern: re.Pattern[str], kind: str, text: str) -> Iterator[Finding]:
    for m in pattern.finditer(text):
        if m.end() > m.start():
            yield Finding(kind, m.start(), m.end())


def _reporter_patterns(reporter: Mapping[str, str], text: str, text_digits: str
                       ) -> Iterator[tuple[str, re.Pattern[str]]]:
    """The reporter's own data as patterns, each compiled only if ``text`` may contain it.

    Compiling a reporter's fresh patterns costs far more than scanning a text
    with them, and most texts do not repeat the identity, so each pattern is
    guarded by a cheap test that every match implies: its digits appear in a row
    among the text's digits; for ASCII text and data, each word appears in the
    lower-cased text (beyond ASCII, case-insensitive matching has special
    cases, so the pattern is always compiled).
    """
    lowered = text.lower() if text.isascii() else None

    def may_contain(word: str) -> bool:
        return lowered is None or not word.isascii() or word.lower() in lowered

    own = _own(tuple(sorted((k, v) for k, v in reporter.items() if isinstance(v, str))))
    if len(own.nik) >= _MIN_REPORTER_DIGITS and own.nik in text_digits:
        yield "reporter_nik", re.compile(r"(?<![0-9])" + _digitwise(own.nik) + r"(?![0-9])")
    if len(own.phone) >= _MIN_REPORTER_DIGITS and own.phone in text_digits:
        prefix = r"(?:\(?" + _PHONE_PREFIX + r"[ .\-]?)?"
        yield "reporter_phone", re.compile(r"(?<![0-9+])" + prefix + _digitwise(own.phone) + r"(?![0-9])")
    if "@" in own.email and may_contain(own.email):
        yield "email", re.compile(r"(?<![\w.+\-])" + re.escape(own.email) + r"(?![\w@])", re.IGNORECASE)
    if own.name and all(may_contain(w) for w in own.name):
        yield "reporter_name", _words(own.name)
    for tokens in own.address:
        if all(may_contain(t) for t in tokens):
            yield "reporter_address", _words(tokens, between=r"[\W_]{1,3}")


@dataclass(frozen=True)
class _Own:
    """A reporter's own data as the patterns need it, worked out once per reporter (``_own``): a complaint's
    title, body and kecamatan are redacted in turn with the same reporter."""
    nik: str                              # its digits
    phone: str                            # its national number
    email: str
    name: tuple[str, ...]                 # its words (none if shorter than 3 letters)
    address: tuple[tuple[str, ...], ...]  # the words of the whole address, and of each numbered part


@functools.lru_cache(maxsize=64)
def _own(reporter: tuple[tuple[str, str], ...]) -> _Own:
    r = dict(reporter)
    name = tuple(_fold(r.get("name") or "").split())
    return _Own(nik=_digits(_fold(r.get("nik") or "")), phone=_national_number(_fold(r.get("phone") or "")),
                email=_fold(r.get("email") or "").strip(), name=name if len("".join(name)) >= 3 else (),
                address=_address_words(_fold(r.get("address") or "")))


def _address_words(address: str) -> tuple[tuple[str, ...], ...]:
    """The words of the address whole, and of each comma-separated part that holds a number ("Jl. Cempaka
    No. 12" is also written "Jl Cempaka No 12", so only its words count)."""
    parts = [address, *(p for p in address.split(",") if _HAS_DIGIT.search(p))] if "," in address else [address]
    words = (tuple(_WORD.findall(part)) for part in dict.fromkeys(parts) if len(part.strip()) >= _MIN_ADDRESS_PART)
    return tuple(dict.fromkeys(w for w in words if w))


def _words(words: Sequence[str], between: str = r"\s+") -> re.Pattern[str]:
    """``words`` in a row, whole, case-insensitive, with ``between`` (any whitespace) between them."""
    return re.compile(r"(?<!\w)" + between.join(re.escape(w) for w in words) + r"(?!\w)", re.IGNORECASE)


def _nik_findings(text: str) -> Iterator[Finding]:
    """16-digit windows of consecutive groups inside each digit run (see module doc)."""
    for run in _DIGIT_RUN_RE.finditer(text):
        if _CURRENCY_BEFORE.search(text[max(0, run.start() - 4) : run.start()]):
            continue
        groups = [(g.start() + run.start(), g.end() + run.start()) for g in _GROUP_RE.finditer(run.group())]
        i = 0
        while i < len(groups):
            total, j = 0, i
            while j < len(groups) and total < _NIK_DIGITS:
                size = groups[j][1] - groups[j][0]
                if size < 2:
                    break  # 1-digit groups never belong to a NIK
                total += size
                j += 1
            if total == _NIK_DIGITS:
                yield Finding("nik", groups[i][0], groups[j - 1][1])
                i = j
            else:
                i += 1


def _candidates(text: str, reporter: Mapping[str, str] | None) -> Iterator[Finding]:
    # Each scan runs only if the text has what every match needs: an "@", 16 digits, an "8".
    text = _fold(text)
    text_digits = _digits(text)
    for kind, pattern in _reporter_patterns(reporter or {}, text, text_digits):
        yield from _regex_findings(pattern, kind, text)
    if "@" in text:
        yield from _regex_findings(_EMAIL_RE, "email", text)
    if len(text_digits) >= _NIK_DIGITS:
        yield from _nik_findings(text)
    if "8" in text:
        yield from _regex_findings(_PHONE_RE, "phone", text)


def _resolve(candidates: Iterator[Finding]) -> list[Finding]:
    """Keep non-overlapping findings: longest first, then reporter-specific, then leftmost."""
    starts: list[int] = []  # the chosen findings, kept sorted by start (they never overlap)
    chosen: list[Finding] = []
    for f in sorted(set(candidates), key=lambda f: (f.start - f.end, _PRIORITY[f.kind], f.start)):
        i = bisect.bisect_right(starts, f.start)
        if (i == 0 or chosen[i - 1].end <= f.start) and (i == len(chosen) or f.end <= chosen[i].start):
            starts.insert(i, f.start)
            chosen.insert(i, f)
    return chosen


def redact(text: str, *, reporter: Mapping[str, str] | None = None) -> Redaction:
    """Mask personal data in ``text``; ``reporter`` holds name/nik/phone/email."""
    findings = _resolve(_candidates(text, reporter))
    parts: list[str] = []
    cursor = 0
    for f in findings:
        parts.append(text[cursor : f.start])
        parts.append(MASKS[f.kind])
        cursor = f.end
    parts.append(text[cursor:])
    return Redaction("".join(parts), tuple(findings))
