""".dockerignore: what never goes into an image, and Docker's pattern rules to apply it.

dlbox builds the context archive itself (the project under `project/`, generated files under
`dlbox/`), so it applies the patterns here, with the semantics `docker build` gives a
`.dockerignore`: patterns are relative to the project root (`data` is only the top-level
folder; `**/data` is any), `*` and `?` never cross a `/`, `**` spans folders, a pattern
that matches a folder excludes everything under it, `!pattern` re-includes, and the last
matching pattern wins. The project's own `.dockerignore`, if any, is applied after ours.

One exception to docker's rules: what PROTECTED_PATTERNS leave out (secrets, VCS folders,
weight files) comes back only for a `!` pattern that matches the protected item itself (the
file or folder the protected pattern matched) or something below it, never merely a folder
above it, and whose last segment names it, not wildcards alone: after `*` and `!src` (or
`!src/**`, `!*`), src/.env stays out; `!src/.env`, `!**/*.pt` or `!weights/backbone.pt`
bring theirs back. It only ever leaves out more than docker would, so
the .dockerignore we hand the engine with the archive drops nothing the archive holds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from dlbox.errors import UsageError

# Weights and checkpoints anywhere (a project that needs one in the image re-includes it in
# its own .dockerignore: !weights/model.pt)
WEIGHT_PATTERNS: tuple[str, ...] = (
    "**/*.pt",
    "**/*.pth",
    "**/*.ckpt",
    "**/*.safetensors",
    "**/*.bin",  # Hugging Face pytorch_model.bin
    "**/*.onnx",
    "**/*.h5",
    "**/*.keras",
)

# Never worth shipping: version control, environments, data, training outputs, weights, caches
# and secrets. `data`, `runs` and `checkpoints` are the folders dlbox itself writes and reads;
# they are mounted at run time (`dlbox image run --data DIR --runs DIR`), never baked in.
DEFAULT_PATTERNS: tuple[str, ...] = (
    ".git",
    ".hg",
    ".svn",
    "**/.git",  # a vendored clone's too: its config may hold a token in a remote's URL
    "**/.hg",
    "**/.svn",
    ".venv",
    "venv",
    "**/__pycache__",
    "**/*.py[cod]",
    "**/.ipynb_checkpoints",
    "**/.DS_Store",
    ".cache",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".hypothesis",
    ".tox",
    ".nox",
    "build",
    "dist",
    "**/*.egg-info",
    "node_modules",
    "data",
    "runs",
    "checkpoints",
    "**/checkpoints",
    *WEIGHT_PATTERNS,
    "lightning_logs",
    "mlruns",
    "wandb",
    # Secrets anywhere: environment files, login files, SSH keys.
    ".env",
    ".envrc",
    "**/*.env",
    "**/.env.*",
    "**/.envrc",
    "**/.netrc",
    "**/_netrc",
    "**/.pypirc",
    "**/.git-credentials",
    "**/id_rsa*",
    "**/id_dsa*",
    "**/id_ecdsa*",
    "**/id_ed25519*",
    "dlbox.lock.*.tmp",
)

_VCS_PATTERNS: tuple[str, ...] = DEFAULT_PATTERNS[:DEFAULT_PATTERNS.index("**/.svn") + 1]
_SECRET_PATTERNS: tuple[str, ...] = DEFAULT_PATTERNS[DEFAULT_PATTERNS.index(".env"):
                                                     DEFAULT_PATTERNS.index("dlbox.lock.*.tmp")]

# Left out even when a `!` names a folder above them (an allowlist `*`, `!src`): a `!` line
# brings one back only when it matches the protected file or folder itself, or below it, and
# names it (IgnoreRule.names_an_item: not `!src/**` or `!*`).
PROTECTED_PATTERNS: frozenset[str] = frozenset(
    (*_VCS_PATTERNS, *_SECRET_PATTERNS, *WEIGHT_PATTERNS))

_HEADER = (
    "# Written by dlbox: what never goes into the image. Data, runs and checkpoints are\n"
    "# mounted at run time (dlbox image run --data DIR --runs DIR), never baked in.\n"
)


def render_dockerignore(patterns: Sequence[str] = DEFAULT_PATTERNS, prefix: str = "") -> str:
    """The text of a .dockerignore holding `patterns` (each under `prefix`, e.g. "project/")."""
    lines = []
    for pattern in patterns:
        negated = pattern.startswith("!")
        body = pattern[1:] if negated else pattern
        lines.append(("!" if negated else "") + prefix + body.lstrip("/"))
    return _HEADER + "\n".join(lines) + "\n"


def parse_dockerignore(text: str) -> tuple[str, ...]:
    """Patterns of a .dockerignore file: comments and blank lines dropped, paths cleaned."""
    patterns: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        body = line[1:].strip() if negated else line
        body = _clean(body)
        if body:
            patterns.append(("!" if negated else "") + body)
    return tuple(patterns)


def _clean(pattern: str) -> str:
    # Docker cleans patterns like filepath.Clean: no leading "/" or "./", no trailing "/".
    parts = [p for p in pattern.split("/") if p not in ("", ".")]
    return "/".join(parts)


def _translate(pattern: str) -> str:
    """A Docker ignore pattern as a regular expression over '/'-separated relative paths."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if char == "*":
            if pattern[i:i + 2] == "**":
                i += 2
                if pattern[i:i + 1] == "/":  # "**/" : zero or more whole folders
                    out.append("(?:.*/)?")
                    i += 1
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.find("]", i + 1)
            if end == -1:  # docker build refuses it ("syntax error in pattern")
                raise re.error("a '[' without its closing ']'")
            else:
                # Docker copies the class into a Go regexp: `^` negates it, and a `!` is
                # only a character there (not "not", as in a shell or .gitignore).
                body = pattern[i + 1:end]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end
        elif char == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


@dataclass(frozen=True)
class IgnoreRule:
    pattern: str
    negated: bool
    protected: bool = False  # one of PROTECTED_PATTERNS (never a "!" pattern)

    @cached_property
    def regex(self) -> re.Pattern[str]:
        return re.compile(_translate(self.pattern) + r"\Z")

    def matches(self, path: str) -> bool:
        """True when `path` or one of its parent folders matches the pattern."""
        if self.regex.match(path):
            return True
        parts = path.split("/")
        return any(self.regex.match("/".join(parts[:k])) for k in range(1, len(parts)))

    @cached_property
    def names_an_item(self) -> bool:
        """Whether the last segment says something of a name beyond wildcards and dots
        (`.env`, `*.pt`, `id_rsa.pub`; not `*`, `**`, `.*`): a `!` line like that names what
        it brings back, where `!src/**` or `!*` only happens to match a secret."""
        last = self.pattern.rsplit("/", 1)[-1]
        literal = re.sub(r"\[[^\]]*\]|[*?\\]", "", last)
        return literal.strip(".") != ""

    def depths(self, path: str) -> list[int]:
        """How many parts of `path` each match is (1: its top folder), shallowest first."""
        parts = path.split("/")
        return [k for k in range(1, len(parts) + 1)
                if self.regex.match("/".join(parts[:k]))]


class IgnoreMatcher:
    """Decides, for a relative path, whether the context leaves it out (last match wins)."""

    def __init__(self, patterns: Iterable[str]) -> None:
        rules = []
        for pattern in patterns:
            negated = pattern.startswith("!")
            body = _clean(pattern[1:] if negated else pattern)
            if body:
                rules.append(IgnoreRule(body, negated,
                                        not negated and body in PROTECTED_PATTERNS))
        self.rules: tuple[IgnoreRule, ...] = tuple(rules)
        self.has_exceptions = any(rule.negated for rule in rules)

    def ignored(self, path: str) -> bool:
        verdict = False
        held = 0  # the depth of the deepest protected item that keeps `path` out (0: none)
        for rule in self.rules:
            if not rule.matches(path):
                continue
            if rule.negated:
                # a "!" of a folder above a protected item does not bring it back
                if held and (rule.depths(path)[-1] < held or not rule.names_an_item):
                    continue
                held = 0
            elif rule.protected:
                held = max(held, rule.depths(path)[0])
            verdict = not rule.negated
        return verdict

    def prune(self, folder: str) -> bool:
        """True when nothing below an ignored `folder` can be re-included (skip walking it)."""
        if not self.ignored(folder):
            return False
        prefix = folder + "/"
        for rule in self.rules:
            # A "!" pattern that could reach into this folder keeps us walking it.
            if rule.negated and (rule.pattern.startswith(prefix) or "*" in rule.pattern
                                 or "?" in rule.pattern or "[" in rule.pattern):
                return False
        return True


def project_patterns(project_dir: Path) -> tuple[str, ...]:
    """Our defaults, then the project's own .dockerignore (which may re-include with "!")."""
    own = project_dir / ".dockerignore"
    if not own.is_file():
        return DEFAULT_PATTERNS
    try:
        text = own.read_text(encoding="utf-8-sig")  # docker strips a BOM
    except UnicodeDecodeError as error:
        raise UsageError(f"{own} is not UTF-8 text (byte {error.start})",
                         hint="save it as UTF-8 (iconv -f latin1 -t utf-8), as docker build "
                              "reads it") from None
    except OSError as error:
        raise UsageError(f"cannot read {own}: {error.strerror}",
                         hint="make it readable (chmod a+r), or remove it") from None
    own_patterns = parse_dockerignore(text)
    for pattern in own_patterns:
        body = pattern[1:] if pattern.startswith("!") else pattern
        try:
            re.compile(_translate(body))
        except re.error as error:  # "a[]b", "x[z-a]": docker build refuses them as well
            raise UsageError(f"{own}: the pattern {pattern!r} is not valid ({error.msg})",
                             hint="fix or remove that line (a '[' starts a set of characters "
                                  "such as [a-z]; write \\[ for the character itself)") from None
    return DEFAULT_PATTERNS + own_patterns
