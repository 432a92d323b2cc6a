"""One Lambda invocation in this process, as the runtime would make it (run as ``-m``).

Reads one JSON request from stdin: ``{"event": ..., "timeout_s": ..., "request_id": ...}``
and optionally ``"init_used_s"`` (a slow cold start: that much of the timeout is gone
before the handler is called). Imports the handler first (Lambda's init phase, not
counted in the timeout), then calls :func:`tmdb_ingest.lambda_handler.handler` with
awslambdaric's ``LambdaContext``, whose deadline is the timeout from then on.

Writes to stdout the line ``ready`` once the handler is about to be called, then one
JSON line: the handler's result as ``{"result": ...}``, or the error as the runtime
reports it, ``{"errorType": ..., "errorMessage": ...}`` (exit status 1). The handler's
own log lines go to stderr, as they would to CloudWatch.
"""

from __future__ import annotations

import faulthandler
import json
import sys
import time
import traceback


def main() -> int:
    request = json.loads(sys.stdin.read())
    from awslambdaric.lambda_context import LambdaContext

    from tmdb_ingest.lambda_handler import handler

    remaining = float(request["timeout_s"]) - float(request.get("init_used_s", 0.0))
    deadline_ms = int((time.time() + remaining) * 1000)
    context = LambdaContext(request["request_id"], None, None, deadline_ms)
    # What it was doing if it is about to be killed at its timeout, for the test's message.
    faulthandler.dump_traceback_later(max(0.1, remaining - 0.2), exit=False)
    print("ready", flush=True)
    try:
        result = handler(request["event"], context)
    except Exception as exc:
        error = {
            "errorType": type(exc).__name__,
            "errorMessage": str(exc),
            "requestId": request["request_id"],
            "stackTrace": traceback.format_tb(exc.__traceback__),
        }
        print(json.dumps(error), flush=True)
        return 1
    print(json.dumps({"result": result}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
