#!/usr/local/bin/python3
"""Container health check: GET a party's /healthz (which also checks its database).

Usage: ecash-tpm-healthcheck [URL]; without URL, $HEALTHCHECK_URL, else
http://127.0.0.1:8080/healthz. Exit 0 when the answer is 200 with status "ok", 1 otherwise.
The parties serve HTTPS only; compose points this at each party's plain ``healthz_port``
(``/healthz`` alone, on loopback inside the container), so the check needs neither the
central bank's root nor a client certificate, and cannot be fooled by plain HTTP elsewhere.
Standard library only: it must work even when the service's own imports are broken.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request

DEFAULT_URL = "http://127.0.0.1:8080/healthz"


def main(argv: list[str]) -> int:
    url = argv[1] if len(argv) > 1 else os.environ.get("HEALTHCHECK_URL", DEFAULT_URL)
    if not url.startswith(("http://127.0.0.1", "http://localhost", "http://[::1]")):
        print(f"refusing non-loopback health URL {url!r}", file=sys.stderr)
        return 1
    try:
        with urllib.request.urlopen(url, timeout=4) as response:  # noqa: S310 - loopback only
            body = json.load(response)
    except (OSError, ValueError, urllib.error.URLError) as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    if not isinstance(body, dict) or body.get("status") != "ok":
        print(f"unhealthy: {body!r}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
