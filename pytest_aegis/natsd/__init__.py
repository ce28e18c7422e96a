"""What a NATS server is, on every backend (where it runs is in ``backends/<backend>/nats.py``).

* :mod:`.spec`: :class:`NatsSpec`, the single source of the ``nats_secure`` keywords
* :mod:`.auth`: the auth modes, one table; :mod:`.jwt` and :mod:`.operator`: nkeys, JWTs, ``.creds``
* :mod:`.material`: a server's credentials and certificate files; :mod:`.conf`: its config file
* :mod:`.startup`: what the server logs while it starts
* :mod:`.server`: the :class:`NatsServer` handle tests get; :mod:`.connect`: every client the
  harness opens, with a deadline
* :mod:`.pool`: the session's servers, one per spec; :mod:`.jetstream`: what each test made on a
  shared server, removed after it

(Named ``natsd`` so that ``import nats`` means nats-py everywhere.)
"""

from __future__ import annotations
