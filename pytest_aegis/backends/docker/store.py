"""A stopped container's JetStream store, reached through the engine's archive API (which works
on a stopped container, local engine or remote): :class:`ContainerStore`
(:class:`~pytest_aegis.natsd.store.StoreFiles`).

The archive API copies files in and out but removes nothing, so :meth:`ContainerStore.delete`
puts the file's directory back without it: one archive whose first entry is a plain file of the
directory's name (the engine replaces a directory by a non-directory, removing it) and whose next
entries are the directory and every file it held but the deleted one, with their modes."""

from __future__ import annotations

import io
import tarfile
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from docker.models.containers import Container


class ContainerStore:
    """The files under ``root`` (the server's ``store_dir``) in a stopped ``container``."""

    def __init__(self, container: Container, root: str) -> None:
        self.container = container
        self.root = root.rstrip("/")

    def _archive(self, path: str) -> tarfile.TarFile | None:
        from docker.errors import NotFound

        try:
            stream, _ = self.container.get_archive(f"{self.root}/{path}")
        except NotFound:
            return None
        return tarfile.open(fileobj=io.BytesIO(b"".join(stream)))

    def list_files(self, under: str) -> dict[str, int]:
        archive = self._archive(under)
        if archive is None:
            return {}
        parent = under.rpartition("/")[0]  # the archive's names start at under's last part
        return {
            f"{parent}/{m.name}" if parent else m.name: m.size for m in archive.getmembers() if m.isfile()
        }

    def read(self, path: str) -> bytes:
        archive = self._archive(path)
        member = next((m for m in archive.getmembers() if m.isfile()), None) if archive else None
        if archive is None or member is None:
            raise FileNotFoundError(f"{self.root}/{path} in container {self.container.name}")
        data = archive.extractfile(member)
        assert data is not None
        return data.read()

    def write(self, path: str, data: bytes) -> None:
        parent, _, name = path.rpartition("/")
        archive = self._archive(path)
        old = next((m for m in archive.getmembers() if m.isfile()), None) if archive else None
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(data), old.mode if old else 0o644
        if old is not None:
            info.uid, info.gid, info.mtime = old.uid, old.gid, old.mtime
        self._put(parent, [(info, data)])

    def delete(self, path: str) -> None:
        directory, _, name = path.rpartition("/")
        holder, _, base = directory.rpartition("/")
        archive = self._archive(directory)
        if archive is None:
            raise FileNotFoundError(f"{self.root}/{path} in container {self.container.name}")
        members = archive.getmembers()
        if f"{base}/{name}" not in {m.name for m in members}:
            raise FileNotFoundError(f"{self.root}/{path} in container {self.container.name}")
        placeholder = tarfile.TarInfo(base)  # a file where the directory was: the engine removes it
        entries: list[tuple[tarfile.TarInfo, bytes | None]] = [(placeholder, b"")]
        for member in members:
            if member.name == f"{base}/{name}":
                continue
            content = archive.extractfile(member) if member.isfile() else None
            entries.append((member, content.read() if content else None))
        self._put(holder, entries)

    def _put(self, directory: str, entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> None:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for info, data in entries:
                tar.addfile(info, io.BytesIO(data) if data is not None else None)
        if not self.container.put_archive(f"{self.root}/{directory}".rstrip("/"), buffer.getvalue()):
            raise OSError(f"the engine refused to write {self.root}/{directory} in {self.container.name}")
