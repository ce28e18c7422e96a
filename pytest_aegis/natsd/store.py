"""Damage to a stopped nats-server's JetStream store, as the Jepsen analysis of NATS 2.12.1 did it
(bit flips, truncation and loss of a minority's ``.blk`` files; corrupt Raft snapshots):
:func:`corrupt_store` and what it did, :class:`StoreDamage`.

The store is reached through :class:`StoreFiles`, which each backend provides for a stopped server
(a directory on this machine; the files of a stopped container, through the engine); paths are
relative to the server's ``store_dir``: ``jetstream/<account>/streams/<stream>/msgs/<n>.blk`` for a
stream's message blocks, ``jetstream/$SYS/_js_/<raft group>/snapshots/snap.<term>.<index>`` for the
snapshots of a replicated stream's Raft group.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Literal, Protocol, get_args

Kind = Literal["bitflip", "truncate", "delete"]
What = Literal["blocks", "snapshot"]
KINDS: tuple[Kind, ...] = get_args(Kind)
WHATS: tuple[What, ...] = get_args(What)
_BLOCK = re.compile(r"^(\d+)\.blk$")


class StoreFiles(Protocol):
    """A stopped server's JetStream store: paths relative to its ``store_dir``."""

    def list_files(self, under: str) -> dict[str, int]:
        """Every file under ``under`` (recursively) and its size; ``{}`` when there is none."""
        ...

    def read(self, path: str) -> bytes: ...
    def write(self, path: str, data: bytes) -> None: ...
    def delete(self, path: str) -> None: ...


@dataclass(frozen=True)
class FileDamage:
    """What was done to one file: ``size`` before, ``size_after`` (``None``: deleted) and, for a
    bit flip, the byte ``offset`` and ``bit``."""

    path: str
    size: int
    size_after: int | None
    offset: int | None = None
    bit: int | None = None

    def __str__(self) -> str:
        if self.size_after is None:
            return f"{self.path}: deleted ({self.size} bytes)"
        if self.offset is not None:
            return f"{self.path}: bit {self.bit} of byte {self.offset} flipped ({self.size} bytes)"
        return f"{self.path}: truncated from {self.size} to {self.size_after} bytes"


@dataclass(frozen=True)
class StoreDamage:
    """What :func:`corrupt_store` did to one server's store."""

    server: str
    stream: str
    kind: Kind
    what: What
    seed: int
    files: tuple[FileDamage, ...]

    def __str__(self) -> str:
        head = f"{self.server}: {self.kind} of {self.what} of stream {self.stream} (seed {self.seed})"
        return "\n".join([head, *(f"  {damage}" for damage in self.files)])


def store_paths(stream: str, what: What, *, group: str | None, account: str = "$G") -> tuple[str, str]:
    """The directory that holds ``what`` of ``stream``, and the pattern of the files meant."""
    if what == "blocks":
        return f"jetstream/{account}/streams/{stream}/msgs", r"\d+\.blk"
    if group is None:
        raise ValueError(f"corrupt(what='snapshot') of stream {stream!r} needs its Raft group")
    return f"jetstream/$SYS/_js_/{group}/snapshots", r"snap\.\d+\.\d+"


def corrupt_store(
    store: StoreFiles,
    *,
    server: str,
    stream: str,
    kind: str,
    what: str,
    seed: int = 0,
    group: str | None = None,
) -> StoreDamage:
    """Damage ``what`` (``blocks``: every message block of ``stream``; ``snapshot``: the snapshots
    of its Raft group ``group``) in ``store``: ``delete`` each file, ``truncate`` it to half its
    size, or ``bitflip`` one bit at a place drawn from ``seed``.  :class:`ValueError` for a bad
    kind or what, or when there is no such file (the message lists what the store holds)."""
    if kind not in KINDS:
        raise ValueError(f"corrupt(kind={kind!r}): valid kinds are {', '.join(KINDS)}")
    if what not in WHATS:
        raise ValueError(f"corrupt(what={what!r}): valid values are {', '.join(WHATS)}")
    directory, pattern = store_paths(stream, what, group=group)
    found = {
        path: size
        for path, size in store.list_files(directory).items()
        if re.fullmatch(pattern, path.rpartition("/")[2]) and size > 0
    }
    if not found:
        held = sorted(store.list_files("jetstream"))
        raise ValueError(
            f"{server}: no {what} of stream {stream!r} to corrupt under {directory} (the stream must have "
            f"been written to, and the node stopped after; a snapshot is written on a clean stop). "
            f"The store holds: {', '.join(held[:30]) or 'nothing'}"
        )
    rng = random.Random(seed)
    done = [_damage(store, path, size, kind, rng) for path, size in sorted(found.items(), key=_order)]
    return StoreDamage(server, stream, kind, what, seed, tuple(done))


def _order(item: tuple[str, int]) -> tuple[int, str]:
    name = item[0].rpartition("/")[2]
    match = _BLOCK.match(name)
    return (int(match.group(1)) if match else 0, name)


def _damage(store: StoreFiles, path: str, size: int, kind: str, rng: random.Random) -> FileDamage:
    if kind == "delete":
        store.delete(path)
        return FileDamage(path, size, None)
    data = bytearray(store.read(path))
    if kind == "truncate":
        store.write(path, bytes(data[: size // 2]))
        return FileDamage(path, size, size // 2)
    offset, bit = rng.randrange(len(data)), rng.randrange(8)
    data[offset] ^= 1 << bit
    store.write(path, bytes(data))
    return FileDamage(path, size, size, offset, bit)
