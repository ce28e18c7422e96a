"""What a third-party server is: :class:`ServerSpec`.

One spec serves every backend: on ``local`` the harness runs ``binary`` with ``args``; on
``docker`` it runs ``image`` (with ``image_args``, default ``args``, as the container's command:
official images such as ``redis:7`` pass flags to their server); on ``external`` it connects to
the URL that ``AEGIS_EXTERNAL_<NAME>_URL`` gives.  In ``args`` (and ``url``, ``env``),
``{host}`` is ``127.0.0.1``, ``{port}`` the port the harness leased for the instance (the same
across restarts) and ``{dir}`` a directory of the instance's own (local backend: the data
survives a restart).  Readiness is a health contract of :mod:`pytest_aegis.app.health`: a TCP
connect (the default), an HTTP GET, the ready line, or a :class:`~pytest_aegis.app.health.CustomProbe`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pytest_aegis.app.health import CustomProbe, Health, HttpGet, ReadyLine, TcpConnect
from pytest_aegis.config import DEFAULT_START_TIMEOUT
from pytest_aegis.errors import SpecError

#: What a server's name may be: it names the fixture argument, its log and its variables.
SERVER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
#: The placeholders ``args``, ``url`` and ``env`` values may hold.
PLACEHOLDERS = ("{host}", "{port}", "{dir}")
_PLACEHOLDER = re.compile(r"\{(host|port|dir)\}")
#: The health contracts a third-party server may have (those over NATS are an app's).
SERVER_HEALTH = (TcpConnect, HttpGet, ReadyLine, CustomProbe)


@dataclass(frozen=True)
class ServerSpec:
    """How to run a third-party server.

    ``name``: which server this is (``aegis_server_factory("redis")``), also its log label;
    ``binary``: on the local backend, its executable: a path, or a name looked up in the
    interpreter's bin dir then on ``PATH`` (absent: tests that need it are skipped, saying so);
    ``args``: its arguments; ``image``: on the docker backend, the image it runs in;
    ``image_args``: the container's command (default ``args``); ``health``: when it is ready
    (default: its port accepts a TCP connection); ``ready_pattern``: a regex for the line it
    prints when ready (required by ``health=ReadyLine()``); ``url``: how clients reach it;
    ``env``: variables for its process; ``start_timeout``: seconds it may take to become ready;
    ``install_hint``: how to get the binary, for the skip reason.
    """

    name: str
    binary: str | None = None
    args: tuple[str, ...] = ()
    image: str | None = None
    image_args: tuple[str, ...] | None = None
    health: Health = field(default_factory=TcpConnect)
    ready_pattern: str | None = None
    url: str = "tcp://{host}:{port}"
    env: Mapping[str, str] = field(default_factory=dict)
    start_timeout: float = DEFAULT_START_TIMEOUT
    install_hint: str | None = None

    def __post_init__(self) -> None:
        if not SERVER_NAME.match(self.name):
            raise SpecError(
                f"ServerSpec(name={self.name!r}): a server's name starts with a letter and has only "
                "letters, digits, '-' and '_'"
            )
        if not isinstance(self.health, SERVER_HEALTH):
            kinds = ", ".join(kind.__name__ for kind in SERVER_HEALTH)
            raise SpecError(
                f"server {self.name!r}: health={self.health!r} is an app's contract (over NATS); a "
                f"third-party server's is one of {kinds}"
            )
        if isinstance(self.health, ReadyLine) and not self.ready_pattern:
            raise SpecError(
                f"server {self.name!r}: health=ready (the ready line alone) needs a ready_pattern"
            )
        if self.ready_pattern:
            try:
                re.compile(self.ready_pattern)
            except re.error as exc:
                raise SpecError(
                    f"server {self.name!r}: ready pattern {self.ready_pattern!r}: {exc}"
                ) from None
        if self.binary is None and self.image is None:
            raise SpecError(
                f"server {self.name!r} has neither a binary (local backend) nor an image (docker "
                "backend); give it one or both"
            )
        for text in (*self.args, *(self.image_args or ()), self.url, *self.env.values()):
            for unknown in re.findall(r"\{([a-z_]+)\}", text):
                if f"{{{unknown}}}" not in PLACEHOLDERS:
                    raise SpecError(
                        f"server {self.name!r}: {text!r} names {{{unknown}}}; the placeholders are "
                        f"{', '.join(PLACEHOLDERS)}"
                    )

    @property
    def external_variable(self) -> str:
        """Where the external backend reads the URL of an existing server of this name."""
        return f"AEGIS_EXTERNAL_{self.name.upper().replace('-', '_')}_URL"

    @property
    def container_args(self) -> tuple[str, ...]:
        """The container's command on the docker backend."""
        return self.args if self.image_args is None else self.image_args


def render(words: Sequence[str], *, host: str, port: int, directory: str) -> tuple[str, ...]:
    """``words`` with the placeholders filled in."""
    values = {"host": host, "port": str(port), "dir": directory}
    return tuple(_PLACEHOLDER.sub(lambda match: values[match.group(1)], word) for word in words)
