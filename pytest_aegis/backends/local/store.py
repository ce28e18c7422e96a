"""A stopped local nats-server's JetStream store: a directory on this machine
(:class:`~pytest_aegis.natsd.store.StoreFiles`)."""

from __future__ import annotations

from pathlib import Path


class DirectoryStore:
    """The files under ``root`` (the server's ``store_dir``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def list_files(self, under: str) -> dict[str, int]:
        base = self.root / under
        if not base.is_dir():
            return {}
        return {
            str(path.relative_to(self.root)): path.stat().st_size
            for path in base.rglob("*")
            if path.is_file()
        }

    def read(self, path: str) -> bytes:
        return (self.root / path).read_bytes()

    def write(self, path: str, data: bytes) -> None:
        (self.root / path).write_bytes(data)

    def delete(self, path: str) -> None:
        (self.root / path).unlink()
