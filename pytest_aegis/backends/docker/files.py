"""What goes into a container before it starts: bind mounts and files (as one tar archive for
``put_archive``)."""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Mount:
    """A host directory bind-mounted into the container (``mode`` ``ro`` or ``rw``)."""

    host: Path
    container: str
    mode: str = "ro"


@dataclass(frozen=True)
class FileSpec:
    """A file to put into the container before it starts."""

    path: str  # absolute path inside the container
    content: bytes
    mode: int = 0o644


def tar_of(files: Sequence[FileSpec]) -> bytes:
    """A tar archive (for ``put_archive`` at ``/``) holding ``files`` and their parent directories."""
    buffer = io.BytesIO()
    now = time.time()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        seen: set[str] = set()
        for spec in files:
            parts = Path(spec.path).relative_to("/").parts
            for depth in range(1, len(parts)):
                directory = "/".join(parts[:depth])
                if directory not in seen:
                    seen.add(directory)
                    info = tarfile.TarInfo(directory)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, now
                    tar.addfile(info)
            info = tarfile.TarInfo("/".join(parts))
            info.size, info.mode, info.mtime = len(spec.content), spec.mode, now
            tar.addfile(info, io.BytesIO(spec.content))
    return buffer.getvalue()
