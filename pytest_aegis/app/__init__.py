"""The service under test: :mod:`.spec` (how to run it), :mod:`.runtime` (what a backend runs it
in), :mod:`.process` (the handle a test gets), :mod:`.readiness` (healthy, or why not),
:mod:`.coverage` (measuring it with the session)."""
