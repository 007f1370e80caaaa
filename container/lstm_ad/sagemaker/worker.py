"""The gunicorn worker of `serve`: gthread, with health checks on threads of their own.

SageMaker's health check (`GET /ping`, 2 s timeout) must be answered while every request
thread is scoring a long series or waiting for a slow upload; otherwise the instance is
taken out of service in the middle of a batch. gunicorn's gthread worker hands every
connection to one thread pool, so this worker looks at the first bytes of a connection
(without consuming them) on its event loop, and sends `GET /ping` and
`GET /execution-parameters` to a small pool of their own. A connection whose first
bytes have not arrived yet waits on the event loop, holding no thread.
"""

from __future__ import annotations

import selectors
import socket
import time
from concurrent import futures
from functools import partial
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

HEALTH_REQUESTS = (b"GET /ping", b"GET /execution-parameters")
PEEK_BYTES = 32


class HealthFirstWorker(ThreadWorker):
    """A ThreadWorker with a separate pool for health checks (see the module doc)."""

    health_threads = 2  # set by server.InferenceServer before the workers fork

    def init_process(self) -> None:
        self.health_pool = futures.ThreadPoolExecutor(max_workers=self.health_threads,
                                                      thread_name_prefix="lstm-ad-health")
        super().init_process()

    def enqueue_req(self, conn: Any) -> None:
        head = _first_bytes(conn)
        if head is None:  # nothing to read yet: wait on the event loop, not in a thread
            self._wait_for_data(conn)
            return
        pool = self.health_pool if head.startswith(HEALTH_REQUESTS) else self.tpool
        done = pool.submit(self.handle, conn)
        done.add_done_callback(lambda fut: self.method_queue.defer(self.finish_request, conn, fut))

    def _wait_for_data(self, conn: Any) -> None:
        conn.sock.setblocking(False)
        conn.timeout = time.monotonic() + self.cfg.keepalive
        self.pending_conns.append(conn)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_pending_socket_readable, conn))


def _first_bytes(conn: Any) -> bytes | None:
    """The start of the next request on `conn` without consuming it; None when nothing has arrived."""
    parser = getattr(conn, "parser", None)
    buffered = parser.unreader.buf.getvalue() if parser is not None else b""
    if buffered:  # a kept-alive connection whose next request was read ahead
        return bytes(buffered[:PEEK_BYTES])
    try:
        head = conn.sock.recv(PEEK_BYTES, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except (BlockingIOError, InterruptedError):
        return None
    except OSError:
        return b""  # a broken connection: let the ordinary path close it
    return head if head else b""  # b"": the client closed; the ordinary path cleans up
