"""The ``docker`` backend: NATS, PostgreSQL and the service under test in containers.

Modules, one concept each: :mod:`.engine` (connecting, version, networks),
:mod:`.labels` and :mod:`.sweep` (whose containers these are; removing a dead
session's), :mod:`.container` (one container: files in, output followed,
readiness from a line), :mod:`.ports`, and one module per server:
:mod:`.nats`, :mod:`.postgres`, :mod:`.app`.

Networking (``--aegis-docker-network``): ``host`` (containers share the host's
network; each server is told its port) or ``bridge`` (ports published on
127.0.0.1).  Every container is labelled with the session; the backend removes
them at the end (``--aegis-keep`` leaves them), and the next session's sweep
removes those of a session that was killed.
"""
