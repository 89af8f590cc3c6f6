"""An S3 server on loopback for the tests: moto's S3 backend behind waitress, one request at a time.

Run as ``python tests/s3_server.py PORT``. moto checks a conditional write (``If-Match`` / ``If-None-Match``)
and then performs it in two steps; serving one request at a time makes each conditional write atomic, as it is
on AWS S3, so the tests of concurrent writers test the adapter and not a race inside the test server. Requests
still arrive over many connections at once.

Why waitress and not moto's own ``moto_server`` (werkzeug's development server): werkzeug closes the connection
after every response, so each request paid a new TCP connection and a new thread, and moto looks its service
modules up on disk (a ``listdir`` and an ``isdir`` per module) for every request. Measured here, one client, 500
requests each: ``PutObject`` 7.5 ms -> 3.2 ms, ``GetObject`` 5.2 -> 3.6 ms, a ``ListObjectsV2`` 5.2 -> 3.7 ms.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any


def main() -> None:
    import waitress
    from moto import backends
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    # The set of moto's service modules does not change while the server runs: look it up once.
    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules  # type: ignore[assignment]

    port = int(sys.argv[1])
    app = DomainDispatcherApplication(create_backend_app)
    one_at_a_time = threading.Lock()

    def serialized(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        # moto reads the undecoded path from RAW_URI (werkzeug's name); waitress calls it REQUEST_URI. Without
        # it, moto decodes the already-decoded PATH_INFO again, and an object key holding "%2F" loses it.
        environ.setdefault("RAW_URI", environ.get("REQUEST_URI", ""))
        with one_at_a_time:
            return list(app(environ, start_response))

    # More threads than the tests' widest fan-out would only queue on the lock; 16 keeps every connection of a
    # 16-wide client served without a backlog of accepted-but-unread sockets.
    waitress.serve(serialized, host="127.0.0.1", port=port, threads=16, _quiet=True, connection_limit=1000)


if __name__ == "__main__":
    main()
