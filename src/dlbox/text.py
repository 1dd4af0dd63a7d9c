"""Small text helpers shared by the CLI, training, the notebook and the image build."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence

# ANSI escape sequences (colours, cursor moves: CSI "ESC [ ... letter", OSC "ESC ] ... BEL"
# or "ESC \"), then any other control character but tab.
_TERMINAL_CONTROL = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"
                               r"|\x1b[@-Z\\-_]|[\x00-\x08\x0b-\x1f\x7f]")


def _as_it_is(line: str) -> str:
    return line


# How a warning's words read where the user is: the command line's flags as they are; the
# notebook swaps in its settings' names (jupyter.notebooks.name_settings_in_errors).
_wording: Callable[[str], str] = _as_it_is


def use_wording(wording: Callable[[str], str] | None) -> None:
    """Word every later `tell` with `wording` (None: as it is)."""
    global _wording
    _wording = wording or _as_it_is


def tell(line: str) -> None:
    """A warning or note for the user, on stderr, in the words of where they are: "a larger
    --num-train" on the command line reads "a larger NUM_TRAIN" in the notebook."""
    print(_wording(line), file=sys.stderr)


def plural(count: int, word: str, many: str | None = None) -> str:
    """"1 epoch", "2 epochs", "0 epochs" (`many`: an irregular plural)."""
    return f"{count} {word if count == 1 else many or word + 's'}"


def listed(items: Sequence[object], at_most: int, counted: bool = False) -> str:
    """"a, b, c" -- or, past `at_most` items, the first ones and ", ..." (with `counted`,
    "a, b, ... (120 in all)"), so that an error line stays a line."""
    shown = ", ".join(str(item) for item in items[:at_most])
    if len(items) <= at_most:
        return shown
    return f"{shown}, ..." + (f" ({len(items)} in all)" if counted else "")


def in_words(items: Sequence[object], last: str = "and") -> str:
    """"a", "a and b", "a, b and c" (`last`: the word before the last item, e.g. "or")."""
    words = [str(item) for item in items]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} {last} {words[-1]}"


def plain(line: str) -> str:
    """`line` without terminal colours and control characters: a build step's output
    (apt's and pip's colours) shown in dlbox's own progress, or quoted in an error."""
    return _TERMINAL_CONTROL.sub("", line)


def reason_and_fix(reason: str, fix: str | None) -> str:
    """A failure on one line, its fix after the reason: "reason; fix" (the reason alone
    without one), as `dlbox predict` prints each file it could not read."""
    return f"{reason}; {fix}" if fix else reason


def shell_quote(path: object) -> str:
    """A path as it goes into a command a hint gives, quoted for a POSIX shell when it needs
    it (a space, a quote), so that the command pastes; one with a control character or
    bytes that are not UTF-8 as bash's (and zsh's, ksh's) $'...' (shown_name), which plain
    POSIX sh has no other way to write."""
    import shlex

    text = str(path)
    return shown_name(text) if _needs_escapes(text) else shlex.quote(text)


# What a line of output cannot show as it is: control characters (a newline would split the
# line; U+0085 and U+2028/9 split it for Python's splitlines), the characters that reorder
# or hide text (bidi embeddings, overrides and isolates, the zero-width space, the BOM:
# review; not the joiners U+200C/D nor the marks U+200E/F, which Persian, Indic scripts and
# emoji sequences hold as ordinary text) and the bytes of a name that are not UTF-8 (Python
# keeps them as lone surrogates).
_UNSHOWABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b\u202a-\u202e\u2028\u2029"
                         r"\u2066-\u2069\ufeff\udc80-\udcff]")
_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\\": "\\\\", "'": "\\'"}
# The joiners and marks (ZWNJ, ZWJ, LRM, RLM): ordinary text between two letters of the
# scripts that use them, or inside an emoji sequence; at a name's edge or beside ASCII they
# only hide (re-review: "cat" + ZWJ read as "cat"), and are escaped there.
_JOINERS = "\u200c\u200d\u200e\u200f"


def _bare_joiner(text: str) -> bool:
    return any(char in _JOINERS and not (0 < index < len(text) - 1 and text[index - 1] > "\x7f"
                                         and text[index + 1] > "\x7f")
               for index, char in enumerate(text))


def _needs_escapes(text: str) -> bool:
    return bool(_UNSHOWABLE.search(text)) or _bare_joiner(text)


def shown_name(name: object) -> str:
    """A file name for one line of output: as it is, or, where it holds a control character
    or bytes that are not UTF-8, quoted as bash's $'...' (and `ls`) writes it, so that the
    line stays whole and the name can be pasted into a command."""
    text = str(name)
    if not _needs_escapes(text):
        return text
    bare = _bare_joiner(text)  # then every joiner of the name is written out

    def escaped(char: str) -> str:
        code = ord(char)
        if char in _ESCAPES:
            return _ESCAPES[char]
        if not _UNSHOWABLE.match(char) and not (bare and char in _JOINERS):
            return char
        if code < 0x80 or 0xdc80 <= code <= 0xdcff:  # a byte: \xHH writes it as it is
            return f"\\x{code & 0xff:02x}"
        # a character of its own: its UTF-8 bytes, which bash's \uHHHH writes only under a
        # UTF-8 locale (review: LC_ALL=C left the text \u0085)
        return "".join(f"\\x{byte:02x}" for byte in char.encode("utf-8"))

    return "$'" + "".join(escaped(char) for char in text) + "'"


def make_writable(folder: object) -> str:
    """The fix for a folder one may not write in, as a hint says it."""
    return f"make {folder} writable for you (`chmod u+rwx {shell_quote(folder)}`)"


# The userinfo of a URL (scheme://user:password@host, scheme://token@host): up to the last @
# before the path, so a password holding an @ is caught (and redacted) whole.
URL_USERINFO = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*)://([^\s/?#]+)@")


def has_url_credentials(text: str) -> bool:
    """Whether a URL in `text` carries credentials (user:password@ or token@)."""
    for match in URL_USERINFO.finditer(text):
        if match.group(1).lower().endswith("ssh") and ":" not in match.group(2):
            continue  # git+ssh://git@host: a login name; the key is not in the URL
        return True
    return False


def redact_url_credentials(text: str) -> str:
    """`text` with the userinfo of every URL replaced by ***."""
    return URL_USERINFO.sub(lambda match: f"{match.group(1)}://***@", text)


def is_utf8(text: str) -> bool:
    """Whether `text` is valid Unicode: a file name whose bytes are not UTF-8 is held as lone
    surrogates, which JSON (and so Docker's API) cannot carry as they are."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def json_path(path: str) -> str:
    """A path for --json: as given, or, where its bytes are not UTF-8 (Python holds them as
    lone surrogates, which json.dumps wrote as "\\udcff", invalid Unicode that jq and strict
    parsers refuse), as the text output shows it, bash's $'...' (text.shown_name)."""
    return path if is_utf8(path) else shown_name(path)
