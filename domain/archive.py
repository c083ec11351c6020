"""Safe extraction of an uploaded configuration tarball.

The archive comes from a user (API upload or CLI ``terraform`` remote runs), so every entry is
checked before anything touches the disk, and extraction itself runs under tarfile's ``data``
filter as a second line of defence against link tricks our lexical checks cannot see.
"""

from __future__ import annotations

import posixpath
import tarfile
from pathlib import Path

# An archive of a million empty files is a denial of service too; no terraform config is that big.
MAX_ENTRIES = 100_000
# Python releases before PEP 706 have no filters; an empty tuple makes the except clause inert.
_FILTER_ERRORS: tuple[type[Exception], ...] = (tarfile.FilterError,) if hasattr(tarfile, "FilterError") else ()


class UnsafeArchive(ValueError):
    """The archive holds an entry that could escape the destination, or is too big or unreadable."""


def _inside(path: str) -> bool:
    """Whether a normalised relative POSIX path stays under the root it is relative to."""
    return path != ".." and not path.startswith("../")


def _check_member(member: tarfile.TarInfo, symlinks: set[str]) -> None:
    name = member.name
    if name.startswith("/"):
        raise UnsafeArchive(f"entry {name!r} has an absolute path")
    normal = posixpath.normpath(name)
    if not _inside(normal):
        raise UnsafeArchive(f"entry {name!r} escapes the destination with '..'")
    # A path that walks through a symlink extracted earlier could land anywhere the link points;
    # writing onto an earlier symlink would follow it. Neither occurs in honest archives.
    parts = normal.split("/")
    for depth in range(1, len(parts) + 1):
        if "/".join(parts[:depth]) in symlinks:
            raise UnsafeArchive(f"entry {name!r} goes through the symlink {'/'.join(parts[:depth])!r}")
    if member.isdev():  # character/block devices and fifos
        raise UnsafeArchive(f"entry {name!r} is a device or fifo")
    if member.issym():
        target = member.linkname
        if target.startswith("/"):
            raise UnsafeArchive(f"entry {name!r} is a symlink to the absolute path {target!r}")
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(normal), target))
        if not _inside(resolved):
            raise UnsafeArchive(f"entry {name!r} is a symlink pointing outside the destination ({target!r})")
        symlinks.add(normal)
    elif member.islnk():
        target = posixpath.normpath(member.linkname)
        if member.linkname.startswith("/") or not _inside(target):
            raise UnsafeArchive(f"entry {name!r} is a hard link pointing outside the destination")
        if target in symlinks:
            raise UnsafeArchive(f"entry {name!r} is a hard link to the symlink {target!r}")
    elif not (member.isreg() or member.isdir()):
        raise UnsafeArchive(f"entry {name!r} has an unsupported type")


def extract_tarball(archive: Path, dest: Path, max_bytes: int) -> None:
    """Extract a ``.tar.gz`` (any tar compression, in fact) into ``dest`` or refuse it whole.

    Every entry is checked before the first byte is written, so a refused archive leaves
    ``dest`` untouched.
    """
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            members: list[tarfile.TarInfo] = []
            symlinks: set[str] = set()
            total = 0
            # Iterate lazily so a compression bomb is refused as soon as it crosses the limit,
            # without decompressing the rest of it.
            for member in tar:
                _check_member(member, symlinks)
                if member.isreg():
                    total += member.size
                    if total > max_bytes:
                        raise UnsafeArchive(
                            f"entry {member.name!r} takes the uncompressed size over the limit of {max_bytes} bytes"
                        )
                members.append(member)
                if len(members) > MAX_ENTRIES:
                    raise UnsafeArchive(f"entry {member.name!r} takes the archive over {MAX_ENTRIES} entries")
            if hasattr(tarfile, "data_filter"):
                tar.extractall(dest, members=members, filter="data")
            else:  # Python without PEP 706 backports: our own checks above are the only guard
                tar.extractall(dest, members=members)
    except _FILTER_ERRORS as exc:
        entry = getattr(exc, "tarinfo", None)
        name = entry.name if entry is not None else "?"
        raise UnsafeArchive(f"entry {name!r} refused: {exc}") from None
    except (tarfile.ReadError, tarfile.CompressionError, EOFError) as exc:
        raise UnsafeArchive(f"not a readable tar archive: {exc}") from None
