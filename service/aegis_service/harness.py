"""How pytest-aegis runs this service: the ``pytest_aegis.apps`` entry point named ``app``.

Installing this package makes it the default app of ``aegis_app`` (unless ``aegis_app_command``
names another); the plugin names nothing of it.  The fields are those of an ``aegis_apps`` line
in the plugin's docs: its command line, the ready line it prints (its JSON carries ``instanceId``
and ``httpUrl``) and, on the docker backend, the image it runs in (``Dockerfile``: the one
``--aegis-docker-app-image`` names, else built from the project's Dockerfile).  Its health
contract is the plugin's default, a health request on ``aegis_app_health_subject``.
"""

from __future__ import annotations

#: What the service prints, followed by a JSON document, once it is ready (``app.py`` prints it).
READY_PREFIX = "AEGIS-SERVICE READY "


def app() -> dict[str, str]:
    """This service as the harness's default app."""
    return {
        "command": "{python} -m aegis_service",
        "ready": rf"^{READY_PREFIX}(?P<json>\{{.*\}})$",
        "image": "Dockerfile",
    }
