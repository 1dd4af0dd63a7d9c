"""Safe extraction of cifar-10-python.tar.gz: only the members the official archive holds.

Accepted: the directory `cifar-10-batches-py` and regular files under it named
data_batch_1..5, test_batch, batches.meta and readme.html (each at most once). Anything
else -- `../x`, an absolute path, a link, a device, a fifo, an unexpected name, an oversized
member -- refuses the whole archive. Files are written by this code (tarfile's extract is
never called, so no metadata, owner or link from the archive reaches the disk) into a temp
dir beside the target, which is renamed into place only when every member passed. A bad
archive leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import tarfile
import tempfile
import warnings
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from dlbox.data.layout import (
    BATCHES_DIRNAME,
    CACHE_FILE_PREFIX,
    DLBOX_FILE_PREFIX,
    IMAGE_EXTENSIONS,
    META_FILE,
    TEST_BATCHES,
    TRAIN_BATCHES,
)
from dlbox.data.paths import check_data_dir_path, fetch_from_copy
from dlbox.errors import DataError, write_failure_kind
from dlbox.fileio import exclusive_lock, fsync_dir
from dlbox.processes import left_by_dead_writer, owner_id, signals_held
from dlbox.text import shell_quote

REQUIRED_FILES: tuple[str, ...] = (*TRAIN_BATCHES, *TEST_BATCHES, META_FILE)
OPTIONAL_FILES: tuple[str, ...] = ("readme.html",)
EXPECTED_FILES: frozenset[str] = frozenset(REQUIRED_FILES + OPTIONAL_FILES)
# The most each member may be: the batches are about 31 MB in the official archive (and as
# ../shared/data's converter writes them), batches.meta and readme.html a few hundred bytes;
# anything far larger is not CIFAR-10 (or is a bomb).
MAX_BATCH_BYTES = 64 * 1024 * 1024
MAX_SMALL_FILE_BYTES = 1024 * 1024  # batches.meta, readme.html
_CHUNK = 1024 * 1024

WRITABLE_HINT = ("pass --data DIR (or set DLBOX_DATA) to a folder you can write to, or fix "
                 "this one's permissions")


def bad_archive_hint(where: str = "") -> str:
    """Use a good archive, into the data dir `where` names (data_flag's " --data DIR")."""
    return (f"use the official cifar-10-python.tar.gz (`dlbox data fetch{where}`), or a copy "
            f"of it: {fetch_from_copy(where)}")


# fetch names the data dir in it (bad_archive_hint), where it is not the default
BAD_ARCHIVE_HINT = bad_archive_hint()


class ForeignMemberError(DataError):
    """A member outside cifar-10-batches-py/ (which may start an image tree)."""


@dataclass(frozen=True)
class ExtractedFile:
    name: str
    size: int
    sha256: str


def _member_kind(member: tarfile.TarInfo) -> str:
    if member.issym():
        return "a symlink"
    if member.islnk():
        return "a hard link"
    if member.isdev() or member.ischr() or member.isblk():
        return "a device"
    if member.isfifo():
        return "a fifo"
    if member.isdir():
        return "a directory"
    if member.isfile():
        return "a regular file"
    return "an unsupported member type"


def _member_parts(name: str) -> list[str]:
    """A member's path as its parts, either slash a separator, without `.` parts."""
    return [p for p in PurePosixPath(name.replace("\\", "/")).parts if p != "."]


def classify_member(member: tarfile.TarInfo) -> str | None:
    """The file name under cifar-10-batches-py/ for an accepted file, '' for the accepted
    directory itself; raises DataError for anything else."""
    name = member.name
    refuse = "refusing the archive: member {!r} {}"
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise DataError(refuse.format(name, "is an absolute path"), hint=BAD_ARCHIVE_HINT)
    parts = _member_parts(name)
    if ".." in parts:
        raise DataError(refuse.format(name, "points outside the target ('..')"),
                        hint=BAD_ARCHIVE_HINT)
    kind = _member_kind(member)
    if not parts and member.isdir():
        return ""  # the root entry `.` of `tar -czf A -C PARENT .` (and shutil.make_archive)
    if parts == [BATCHES_DIRNAME]:
        if not member.isdir():
            raise DataError(refuse.format(name, f"is {kind}, expected a directory"),
                            hint=BAD_ARCHIVE_HINT)
        return ""
    if len(parts) != 2 or parts[0] != BATCHES_DIRNAME or parts[1] not in EXPECTED_FILES:
        if len(parts) == 2 and parts[1].startswith(DLBOX_FILE_PREFIX):
            what = ("dlbox's decoded-data cache" if parts[1].startswith(CACHE_FILE_PREFIX)
                    else "dlbox's own file")
            raise DataError(
                refuse.format(name, f"is {what}, not a CIFAR-10 file"),
                hint="the archive was packed from a data dir dlbox had fetched into or trained "
                     f"from; pack it again without the {DLBOX_FILE_PREFIX}* files (for the "
                     "converter in ../shared/data: into a new, empty output folder)")
        if parts and (parts[-1].startswith("._") or parts[-1] == ".DS_Store"
                      or parts[0] == "__MACOSX"):
            raise DataError(
                refuse.format(name, "is macOS metadata, not a CIFAR-10 file"),
                hint="the archive was packed on a Mac with its metadata files; pack it again "
                     "without them: `COPYFILE_DISABLE=1 tar --exclude=.DS_Store -czf "
                     f"cifar-10-python.tar.gz {BATCHES_DIRNAME}`")
        if len(parts) == 1 and parts[0] in EXPECTED_FILES:
            raise DataError(
                refuse.format(name, f"is not inside a folder named {BATCHES_DIRNAME}"),
                hint=f"the batches must be inside a folder named {BATCHES_DIRNAME}: pack them "
                     f"so with `tar -czf cifar-10-python.tar.gz -C PARENT {BATCHES_DIRNAME}` "
                     f"(PARENT: the folder that holds {BATCHES_DIRNAME}/)")
        raise ForeignMemberError(refuse.format(name, f"is not a CIFAR-10 file ({kind})"),
                                 hint=BAD_ARCHIVE_HINT)
    if not member.isfile():
        raise DataError(refuse.format(name, f"is {kind}, expected a regular file"),
                        hint=BAD_ARCHIVE_HINT)
    limit = max_member_bytes(parts[1])
    if member.size > limit:
        raise DataError(refuse.format(name, f"is {member.size} bytes, too large for CIFAR-10 "
                                            f"(its {parts[1]} is at most {limit})"),
                        hint=BAD_ARCHIVE_HINT)
    return parts[1]


def max_member_bytes(name: str) -> int:
    """The most bytes the file `name` under cifar-10-batches-py/ may have."""
    return MAX_SMALL_FILE_BYTES if name in (META_FILE, *OPTIONAL_FILES) else MAX_BATCH_BYTES


_LOOKAHEAD_MEMBERS = 64


def _image_tree_hint(archive: str) -> str:
    """How to unpack an image tree by hand; one fetched by URL was not kept (deleted with
    the failed fetch), and tar cannot read a URL: it is downloaded first (review)."""
    if archive.lower().startswith(_DOWNLOAD_SCHEMES):
        name = PurePosixPath(archive.split("?", 1)[0].split("#", 1)[0]).name or "images.tar.gz"
        # the label hides a password as *** (redact_url): the URL is the user's to fill in
        url = "URL" if "***" in archive else shell_quote(archive)
        unpack = (f"curl -L -o {shell_quote(name)} {url} && mkdir -p DIR && "
                  f"tar -xzf {shell_quote(name)} -C DIR")
    else:
        unpack = f"mkdir -p DIR && tar -xzf {shell_quote(archive)} -C DIR"
    return (f"{archive} holds an image tree (<split>/<class>/*.jpg), not the CIFAR-10 batches: "
            f"`dlbox data fetch` does not unpack it; unpack it yourself (`{unpack}`) and pass "
            "--data DIR, which dlbox reads as an image folder")


def _holds_images(first: tarfile.TarInfo, tar: tarfile.TarFile) -> bool:
    """Whether `first` or one of the next few members is an image file: the archive is then an
    image tree (such as ../shared/data/cifar10-jpeg.tar.gz), not a wrong CIFAR-10 archive.
    Only member names are read; nothing is extracted. Those past where the archive is cut
    off (or where a download under way has got to: refusal_at_head) count as no image."""
    member: tarfile.TarInfo | None = first
    for _ in range(_LOOKAHEAD_MEMBERS):
        if member is None:
            return False
        if member.isfile() and member.name.lower().endswith(IMAGE_EXTENSIONS):
            return True
        try:
            member = tar.next()
        except _UNREADABLE:
            return False
    return False


# tar's own records (a pax header, a GNU long name) are a few hundred bytes; tarfile reads
# each into memory whole, so one that claims more is refused at its header (a pax header
# of 300 MB, a 300 KB .tar.gz, took 938 MB to inspect).
MAX_EXTENSION_HEADER_BYTES = 64 * 1024
_EXTENSION_TYPES = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE,
                    tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)
_SPARSE = "a sparse file, which CIFAR-10 never holds"


class _BoundedTarInfo(tarfile.TarInfo):
    """tarfile's TarInfo, but it refuses (as an unreadable archive) what would make tarfile
    read without bound before a member is even named: an oversized extension record, or a
    sparse file's map (GNU's extension blocks, or pax's GNU.sparse 1.0 list, which tarfile
    reads for as long as the archive says it goes on)."""

    def _proc_member(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in _EXTENSION_TYPES and self.size > MAX_EXTENSION_HEADER_BYTES:
            raise tarfile.ReadError(
                f"an extended header of {self.size} bytes, more than tar writes")
        if self.type == tarfile.GNUTYPE_SPARSE:
            raise tarfile.ReadError(_SPARSE)
        return super()._proc_member(tarfile_)  # type: ignore[misc]  # not in typeshed

    def _proc_gnusparse_10(self, *_args: object) -> None:
        raise tarfile.ReadError(_SPARSE)


def _open_stream(archive: Path) -> tarfile.TarFile:
    """`archive` opened to be read once, front to back (a .tar.gz or a plain .tar)."""
    return tarfile.open(archive, mode="r|*", tarinfo=_BoundedTarInfo)


# What tarfile raises for an archive it cannot read. RecursionError too: it reads a chain of
# pax or GNU long-name headers by calling itself, once per header (5,000 in a row, 20 KB of
# .tar.gz, crashed the fetch with "unexpected RecursionError").
_UNREADABLE = (tarfile.TarError, EOFError, zlib.error, RecursionError)


def _remove_tree(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(path)


# How much of a download is read for refusal_at_head: the first member headers of an archive
# (a folder entry, a pax header, 64 image files of an image tree fit in it)
HEAD_CHECK_BYTES = 256 * 1024


def refusal_at_head(head: bytes, label: str) -> DataError | None:
    """The refusal that the first bytes of an archive (`head`: of a download under way) already
    earn: a member it may not hold, or one that appears twice, among the headers those bytes
    hold (the CIFAR-100 archive, an image tree), as the whole archive's check would give it.
    None when they earn none, or cannot tell (not a .tar.gz, a member cut off: the check of
    the whole download says what it is)."""
    try:
        with tarfile.open(fileobj=io.BytesIO(head), mode="r|*", tarinfo=_BoundedTarInfo) as tar:
            for _member in _accepted_members(tar, label):
                pass
    except DataError as error:
        return error
    except (*_UNREADABLE, OSError):  # the bytes cut off mid-stream, or no archive at all
        return None
    return None


def _accepted_members(tar: tarfile.TarFile,
                      label: str) -> Iterator[tuple[tarfile.TarInfo, str]]:
    """(member, file name under cifar-10-batches-py/) for each file `tar` may extract, in
    archive order; raises DataError at the first member that refuses the archive (see
    classify_member) or one that appears twice, the folder entries (the root `.` and
    cifar-10-batches-py itself) included: so an archive gets as far as its 9 accepted entries
    and no further (review: a million `.` entries took 70 s and 423 MB)."""
    seen: set[str] = set()
    folders: set[tuple[str, ...]] = set()
    while (member := tar.next()) is not None:
        # stream mode keeps every header it read (tar.members): none is needed again
        tar.members.clear()  # type: ignore[attr-defined]
        # Each refusal names the archive (review: which one, or which URL, was refused).
        try:
            name = classify_member(member)
        except DataError as error:
            # A member outside cifar-10-batches-py/ that starts an image tree: say what the
            # archive is, rather than "use the official archive".
            hint = (_image_tree_hint(label)
                    if isinstance(error, ForeignMemberError) and _holds_images(member, tar)
                    else error.hint)
            raise DataError(f"{error.message}, in {label}", hint=hint) from None
        if not name:
            folder = tuple(_member_parts(member.name))
            if folder in folders:
                raise DataError(f"refusing the archive: member {member.name!r} appears twice, "
                                f"in {label}", hint=BAD_ARCHIVE_HINT)
            folders.add(folder)
            continue
        if name in seen:
            raise DataError(f"refusing the archive: {BATCHES_DIRNAME}/{name} appears twice, "
                            f"in {label}", hint=BAD_ARCHIVE_HINT)
        seen.add(name)
        yield member, name


def _check_complete(names: Iterable[str], label: str) -> None:
    present = set(names)
    missing = [name for name in REQUIRED_FILES if name not in present]
    if missing:
        raise DataError(f"archive {label} lacks {', '.join(missing)}", hint=BAD_ARCHIVE_HINT)


def _extract_members(archive: Path, into: Path, on_file: Callable[[str], None] | None,
                     label: str) -> list[ExtractedFile]:
    written: list[ExtractedFile] = []
    # Stream mode reads the gzip once, front to back; no random access, no member list kept.
    with _open_stream(archive) as tar:
        for member, name in _accepted_members(tar, label):
            source = tar.extractfile(member)
            if source is None:  # pragma: no cover - isfile() members always have data
                raise DataError(f"cannot read {member.name} from {label}", hint=BAD_ARCHIVE_HINT)
            target = into / name
            size = 0
            digest = hashlib.sha256()
            with source, open(target, "xb") as out:
                while chunk := source.read(_CHUNK):
                    size += len(chunk)
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            if size != member.size:
                raise DataError(f"archive member {member.name} is truncated", hint=BAD_ARCHIVE_HINT)
            written.append(ExtractedFile(name, size, digest.hexdigest()))
            if on_file is not None:
                on_file(name)
    _check_complete((f.name for f in written), label)
    return written


def check_cifar10_archive(archive: str | Path, *, label: str | None = None) -> None:
    """Raise DataError unless `archive` is a tar(.gz) that extract_cifar10_archive would
    accept: not a ZIP/7z/RAR or other unreadable file, no image tree, no unexpected, unsafe,
    duplicate or oversized member, none of the required files missing. The same checks and
    messages as extraction, but only member headers are read (the gzip streams through once,
    member data is skipped, nothing is written, and only the headers being looked at, tar's
    own records among them at most 64 KiB each, are held in memory); a wrong format or a
    foreign first member fails at the first bytes, a repeated or foreign member at its
    header.

    `fetch` runs this before the checksum: a file that could not be extracted anyway must
    get the error that says what it is, never a "pass --sha256 <its checksum>" hint.
    """
    archive = Path(archive)
    label = label or str(archive)
    try:
        with _open_stream(archive) as tar:
            names = [name for _member, name in _accepted_members(tar, label)]
    except _UNREADABLE as error:
        raise _unreadable_archive(archive, label, error) from None
    except OSError as error:
        if error.errno is None:  # gzip.BadGzipFile and friends: the archive, not the disk
            raise _unreadable_archive(archive, label, error) from None
        raise DataError(f"cannot read the archive {label}: {error.strerror or error}",
                        hint="check that the file is readable for you") from None
    _check_complete(names, label)


# How other archive formats begin: a mirror (or a helpful colleague) may hand one over.
_OTHER_FORMATS = ((b"PK\x03\x04", "a ZIP archive"), (b"7z\xbc\xaf\x27\x1c", "a 7z archive"),
                  (b"Rar!\x1a\x07", "a RAR archive"))


def _unreadable_archive(archive: Path, label: str, error: BaseException) -> DataError:
    """The error for an archive tarfile cannot read; names a ZIP, 7z or RAR for what it is."""
    try:
        with open(archive, "rb") as handle:
            head = handle.read(8)
    except OSError:
        head = b""
    for magic, kind in _OTHER_FORMATS:
        if head.startswith(magic):
            return DataError(
                f"archive {label} is {kind}, not a .tar.gz",
                hint=f"unpack it yourself and pass --data the folder that holds "
                     f"{BATCHES_DIRNAME}/ (no fetch needed), or get the official "
                     "cifar-10-python.tar.gz")
    reason = " ".join(str(error).split()) or type(error).__name__
    hint = BAD_ARCHIVE_HINT
    if _cut_short(error) and label.lower().startswith(_DOWNLOAD_SCHEMES):
        # A server that sends no Content-Length lets a dropped connection pass as a whole
        # download, which only the gzip stream ending early gives away (review: the hint sent
        # the user for "the official archive" they had just asked for).
        hint = ("the download may have been cut short: run the same command again (the "
                "partial download was deleted, so it starts afresh); if it fails the same way, "
                + BAD_ARCHIVE_HINT)
    return DataError(f"archive {label} is not a readable .tar.gz ({reason})", hint=hint)


# `label` of a downloaded archive: the URL it came from (fetch passes it, password redacted).
_DOWNLOAD_SCHEMES = ("http://", "https://", "ftp://")


def _cut_short(error: BaseException) -> bool:
    """Whether tarfile/gzip stopped because the stream ended early (a truncated file)."""
    return isinstance(error, EOFError) or "unexpected end of data" in str(error)


# What a fetch needs (review: "about 180 MB" was half of it): the archive is 163 MB, its
# batches 178 MB beside it until it is deleted, and --force keeps the old copy until the new
# one is in place; training adds its decoded-tensor cache (176 MB) beside the batches.
SPACE_NEEDED = ("CIFAR-10 takes 180 MB, 350 MB while a downloaded archive is extracted, and "
                "180 MB more for the cache training writes")


def data_dir_error(data_dir: Path, error: OSError, doing: str) -> DataError:
    """The DataError for an OSError met while writing in the data dir: one line naming the
    data dir (never a temp file inside it) and the fix."""
    reason = error.strerror or " ".join(str(error).split()) or type(error).__name__
    kind = write_failure_kind(error)
    if kind == "not-writable":
        return DataError(f"the data dir {data_dir} is not writable ({reason})",
                         hint=WRITABLE_HINT)
    if kind == "no-space":
        return DataError(f"no space left in the data dir {data_dir} ({reason})",
                         hint="free some disk space, or pass --data DIR (or set DLBOX_DATA) "
                              f"to a folder on a disk with room ({SPACE_NEEDED})")
    return DataError(f"cannot {doing} in the data dir {data_dir}: {reason}",
                     hint="check free disk space and permissions, or pass --data DIR "
                          "(or set DLBOX_DATA) to another folder")


def extract_cifar10_archive(archive: str | Path, data_dir: str | Path, *,
                            replace: bool = False,
                            on_file: Callable[[str], None] | None = None,
                            finalize: Callable[[Path, list[ExtractedFile]], None] | None = None,
                            on_leftover: Callable[[Path, OSError], None] | None = None,
                            label: str | None = None,
                            on_placed: Callable[[], None] | None = None,
                            ) -> Path:
    """Extract `archive` into DATA_DIR/cifar-10-batches-py, all or nothing; returns that dir.

    `replace` swaps out an existing folder (otherwise an existing one is an error).
    `finalize(staging_dir, files)` runs before the folder moves into place, so e.g. a checksum
    record written there appears atomically with the data it describes.
    `on_leftover(path, error)` hears of an old folder that was swapped out but could not be
    deleted (the new data is in place all the same); without it, a RuntimeWarning says so.
    `label` names the archive in messages (default: its path), e.g. the URL it came from.
    `on_placed()` runs once the new folder is in place, before a Ctrl-C or SIGTERM held
    through the swap stops the extraction (fetch deletes its download there).
    """
    archive = Path(archive)
    label = label or str(archive)
    data_dir = Path(data_dir)
    target = data_dir / BATCHES_DIRNAME
    if target.exists() and not replace:
        raise DataError(f"{target} already exists", hint="pass --force to replace it")
    check_data_dir_path(data_dir)
    created = not data_dir.exists()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(f"cannot create the data dir {data_dir} ({error.strerror or error})",
                        hint="pass --data DIR (or set DLBOX_DATA) to a writable folder",
                        ) from None
    remove_stale_staging(data_dir)
    staging: Path | None = None
    leftover: tuple[Path, OSError] | None = None
    try:
        try:
            owner = owner_id(namespace=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{BATCHES_DIRNAME}.{owner}.",
                                            suffix=".tmp", dir=data_dir))
        except OSError as error:
            raise data_dir_error(data_dir, error, "create a temp folder") from None
        try:
            files = _extract_members(archive, staging, on_file, label)
        except _UNREADABLE as error:
            raise _unreadable_archive(archive, label, error) from None
        except FileExistsError:
            raise DataError(f"archive {label} holds a member twice",
                            hint=BAD_ARCHIVE_HINT) from None
        except OSError as error:
            if error.errno is None:  # gzip.BadGzipFile and friends: the archive, not the disk
                raise _unreadable_archive(archive, label, error) from None
            if error.filename is not None and Path(error.filename) == archive:
                raise DataError(f"cannot read the archive {label}: "
                                f"{error.strerror or error}",
                                hint="check that the file is readable for you") from None
            raise data_dir_error(data_dir, error, f"extract {label}") from None
        try:
            if finalize is not None:
                finalize(staging, files)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(staging, 0o777 & ~umask)
        except OSError as error:
            raise data_dir_error(data_dir, error, "write the extracted files") from None
        # Ctrl-C or SIGTERM waits for the swap (review: one that cut the old copy's deletion
        # short left .cifar-10-batches-py.old.*, 180 MB, beside the new data), then stops.
        with signals_held():
            leftover = _swap_into_place(staging, target)
            staging = None  # in place: nothing of it to remove any more
            if on_placed is not None:
                on_placed()
    except BaseException:
        if staging is not None:
            with contextlib.suppress(OSError):
                _remove_tree(staging)
        if created:
            with contextlib.suppress(OSError):
                data_dir.rmdir()  # only if still empty
        raise
    fsync_dir(data_dir)
    if leftover is not None:
        if on_leftover is not None:
            on_leftover(*leftover)
        else:
            warnings.warn(leftover_message(*leftover), RuntimeWarning, stacklevel=2)
    return target


def staging_folders(data_dir: Path) -> list[Path]:
    """The temp folders of fetches in `data_dir` (DATA_DIR/.cifar-10-batches-py.*.tmp)."""
    return sorted(folder for folder in data_dir.glob(f".{BATCHES_DIRNAME}.*.tmp")
                  if folder.is_dir() and not folder.is_symlink())


def staging_is_stale(folder: Path) -> bool:
    """Whether a temp folder is a killed fetch's, to delete: its fetch ran on this machine and
    has ended, or (another machine's, in a shared data dir, or of unknown owner) it is over
    processes.STALE_AFTER_S old (a fetch still running refreshes its folder's mtime with
    every file it writes). OSError if it cannot be looked at."""
    return left_by_dead_writer(folder, f".{BATCHES_DIRNAME}.")


def remove_stale_staging(data_dir: Path) -> None:
    """Delete temp folders (DATA_DIR/.cifar-10-batches-py.*.tmp, up to 180 MB each) and old
    copies (.old.*) that a killed fetch left behind; best effort. A temp folder goes when
    staging_is_stale says so. `fetch` calls it holding the data dir's lock (where there are
    locks), so that no other fetch is extracting into it."""
    # The old copy a --force fetch swaps out (DATA_DIR/.cifar-10-batches-py.old.*), left by a
    # fetch killed before it deleted it: with data in place it goes. With none (a fetch killed
    # between its two renames) it is the user's data: restore_swapped_out puts it back.
    target = data_dir / BATCHES_DIRNAME
    in_place = target.exists() or target.is_symlink()
    for aside in old_copies(data_dir) if in_place else []:
        with contextlib.suppress(OSError):
            if aside.is_dir() and not aside.is_symlink():
                _remove_tree(aside)
    for stale in staging_folders(data_dir):
        with contextlib.suppress(OSError):
            if staging_is_stale(stale):
                shutil.rmtree(stale)


def old_copies(data_dir: Path) -> list[Path]:
    """The old copies (DATA_DIR/.cifar-10-batches-py.old.*) that --force fetches moved aside."""
    return sorted(aside for aside in data_dir.glob(f".{BATCHES_DIRNAME}.old.*")
                  if aside.is_dir() or aside.is_symlink())


def restore_swapped_out(data_dir: Path) -> str | None:
    """Put back the old copy that a --force fetch killed between its two renames
    (_swap_into_place) left aside, with no DATA_DIR/cifar-10-batches-py (review: `data check`
    said "no CIFAR-10 data found", and the next fetch deleted the old copy without a word).
    The old copy is the data the user had; the new one, in the fetch's temp folder, is left
    to the next fetch to delete. Done only while no fetch holds the data dir's lock and none
    owns a temp folder there (a fetch mid-swap); the note to tell, or None."""
    target = data_dir / BATCHES_DIRNAME
    try:
        if target.exists() or target.is_symlink() or not old_copies(data_dir):
            return None
        with exclusive_lock(data_dir, DataError("a fetch holds the data dir"), best_effort=True):
            copies = old_copies(data_dir)
            if target.exists() or target.is_symlink() or not copies \
                    or not all(staging_is_stale(folder) for folder in staging_folders(data_dir)):
                return None
            newest = max(copies, key=lambda aside: aside.lstat().st_mtime)
            os.rename(newest, target)
    except (DataError, OSError):
        return None
    fsync_dir(data_dir)
    return (f"restored {target} from {newest}, the data a `dlbox data fetch --force` killed "
            "mid-swap had moved aside")


def leftover_message(path: Path, error: OSError) -> str:
    """One line: the old copy that a --force fetch swapped out but could not delete."""
    reason = error.strerror or " ".join(str(error).split()) or type(error).__name__
    return (f"could not delete the old copy {path} ({reason}); the new data is in place, "
            f"delete the old copy by hand (e.g. `chmod -R u+w {path} && rm -rf {path}`)")


def _swap_into_place(staging: Path, target: Path) -> tuple[Path, OSError] | None:
    """Rename `staging` to `target`; an existing target is moved aside first, then removed.

    Returns (the aside folder, the error) when the old folder could not be deleted: the new
    one is in place, and the old copy is left for the user to delete.
    """
    aside: Path | None = None
    if target.exists() or target.is_symlink():
        try:
            aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
            aside.rmdir()
            os.rename(target, aside)
        except OSError as error:
            if aside is not None:
                with contextlib.suppress(OSError):
                    aside.rmdir()
            reason = error.strerror or " ".join(str(error).split())
            raise DataError(f"cannot replace the existing {target}: {reason}",
                            hint=f"delete {target} by hand (or make its folder writable), "
                                 "or pass --data DIR (or set DLBOX_DATA) to another folder",
                            ) from None
    try:
        os.rename(staging, target)
    except BaseException as error:
        if aside is not None:
            os.rename(aside, target)
        if isinstance(error, OSError):
            raise DataError(f"cannot move the extracted files into place as {target}: "
                            f"{error.strerror or error}", hint=WRITABLE_HINT) from None
        raise
    if aside is None:
        return None
    try:
        if aside.is_symlink() or aside.is_file():
            aside.unlink()
        else:
            _remove_tree(aside)
    except OSError as error:
        return aside, error
    return None
