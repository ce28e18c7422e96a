"""The ``external`` backend: servers someone else started (NATS in Kubernetes reached by a
port-forward, a shared PostgreSQL).

The harness never configures, stops or restarts these servers; it connects to them with the
credentials from the config (``--aegis-external-*`` / ini / ``AEGIS_EXTERNAL_*``) and keeps
what the tests create apart from everything else:

* **NATS** (:class:`ExternalBackend`): the settings are checked when the backend is made (a
  missing or bad URL, a missing ``.creds`` file or CA file is an error naming the setting); the
  first use connects once, reads the server's version and whether JetStream is on, and fails with
  the URL (password redacted) and the reason when that does not work.  A comma-separated list of
  URLs is a cluster: each URL is checked (the error names the bad entry), the harness connects
  through the first node that answers, and the handles give clients and the service every URL
  (:mod:`.servers`), so they fail over between the nodes.  ``tls://`` without
  ``--aegis-external-nats-ca`` verifies the server against the system trust store (verification
  is never turned off); a private CA therefore fails the check with ``certificate verify
  failed`` and a hint to pass the CA.
* **Which tests apply** (:meth:`ExternalBackend.cannot_serve`): ``nats_server`` is the external
  server as it is.  ``nats_secure(...)`` / ``nats_server_factory(...)`` ask for a server the
  harness configures, so they are skipped, unless the spec asks for what the server offers:
  the same auth mode (from the credentials given: user/password, token, creds file or none) and
  the same TLS (``tls://`` or a server that requires TLS), JetStream only if the server has it,
  and nothing only a configured server has (mtls, a bad server certificate, permissions, users).
* **Isolation**: the reference service and the helpers use unique names per test
  (``svc-<random>``, ``aegis-rt-<random>``).  Streams (KV buckets included) that did not exist
  when the session first connected and whose description starts with ``pytest-aegis`` (the
  reference service's buckets; your own streams too, if you describe them so) are deleted when
  the session ends, by the process that owns the session (the xdist controller, never a
  worker), through any node that answers.  Streams that existed before are never touched.  When
  no node answers (each is given a few seconds, without reconnect loops), one line at the end of
  the report says so and what was left behind.
* **PostgreSQL** (:class:`ExternalPostgres`): the server at ``--aegis-external-pg-dsn``; the
  pool gives the session a template database of its own name (``aegis_template_<random>``) and
  drops it, and every database it made, at the end.
* ``stop()`` / ``kill()`` / ``restart()`` / ``pause()`` / ``resume()`` raise :class:`ExternalServerError`
  naming every URL; ``nats_cluster`` (whose handle kills, pauses and partitions nodes) is skipped.
"""
