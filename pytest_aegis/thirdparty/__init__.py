"""Third-party servers beside the user's programs (Redis, a search engine, a mail catcher):
what one is (:class:`~pytest_aegis.thirdparty.spec.ServerSpec`), how a test holds one
(:class:`~pytest_aegis.thirdparty.server.ThirdPartyServer`) and how a project declares them (the
``aegis_servers`` setting).  Where one runs is the backend's: ``backends/<backend>/thirdparty.py``.
"""
