"""HTTP adapters: the FastAPI application (registry, audit and probe routes, one error shape) and the
embedded uvicorn server."""
