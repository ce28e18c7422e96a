"""The ``local`` backend: servers as child processes of pytest (the embedded default, no Docker).

Modules by server kind: :mod:`.nats` (nats-server), :mod:`.postgres` (postmasters, run as
``nobody`` when pytest is root) with :mod:`.datadir` (the initdb cache and data directories),
:mod:`.binaries` (finding both servers' binaries) and :mod:`.app` (the service under test as a
child process, every backend's default).
"""
