"""Limits of the serving runtime, in a module without imports: the CLI and the workflow read
the default from here without loading MLServer, and model folders carry it inside
``cdl_serving``."""

MAX_REQUEST_BYTES = 1024 * 1024  # a V2 request body larger than this is refused (HTTP 413)
