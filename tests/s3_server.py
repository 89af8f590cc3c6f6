"""An S3 server on loopback for the tests: moto's S3 backend behind werkzeug, one request at a time.

Run as ``python tests/s3_server.py PORT``. moto checks a conditional write (``If-Match`` / ``If-None-Match``)
and then performs it in two steps; serving one request at a time makes each conditional write atomic, as it is
on AWS S3, so the tests of concurrent writers test the adapter and not a race inside the test server. Requests
still arrive over many connections at once (HTTP/1.1, a thread per connection).
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any


def main() -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import run_simple

    port = int(sys.argv[1])
    app = DomainDispatcherApplication(create_backend_app)
    one_at_a_time = threading.Lock()

    def serialized(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        with one_at_a_time:
            return list(app(environ, start_response))

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    run_simple("127.0.0.1", port, serialized, threaded=True)


if __name__ == "__main__":
    main()
