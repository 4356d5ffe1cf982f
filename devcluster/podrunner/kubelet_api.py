"""The part of the kubelet's HTTPS API that the API server needs from this node: container logs.

The API server answers ``kubectl logs`` by asking the node's kubelet, at the node's InternalIP
(127.0.0.1, see node.py) and ``daemonEndpoints.kubeletEndpoint.Port``. This server listens
there, on 127.0.0.1 only, with TLS (the API server talks nothing else to a kubelet; it does not
verify the certificate unless told to). Given a client CA, it serves only clients whose
certificate that CA signed, the API server's kubelet client certificate (devcluster/up.sh makes
both): a kubelet authenticates its callers, so pod logs are read through the API server and its
RBAC, not around them.

    GET /containerLogs/{namespace}/{pod}/{container}   200 text/plain, chunked (logs.py reads)
    GET /healthz                                       200 ok

A request the log file cannot answer gets 400 with the reason as its body, which the API server
passes on to kubectl; a pod with no log here gets 404. Each connection has a thread of its own
(TLS handshake included), so a ``kubectl logs -f`` never holds up another request.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import socketserver
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .common import HOST_IP
from .logs import LogRequestError, parse_log_query, stream_log

log = logging.getLogger("podrunner")

HANDSHAKE_TIMEOUT_S = 10.0
# A write that blocks this long means the API server stopped reading: the stream is abandoned.
WRITE_TIMEOUT_S = 60.0
# How often a follower looks for new output (and whether its client is still there).
FOLLOW_POLL_S = 0.2


@dataclass(frozen=True)
class ContainerLog:
    """Where a pod's log is, and how to tell that nothing more will be written to it."""

    path: Path
    container: str | None  # the container that runs; None: not known any more
    done: threading.Event | None  # set once its process has ended; None: no process here


LogLookup = Callable[[str, str], ContainerLog | None]


def tls_context(cert: Path, key: Path, client_ca: Path | None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    if client_ca is not None:
        ctx.load_verify_locations(cafile=str(client_ca))
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


class _ClientGone(Exception):
    pass


def _peer_closed(sock: socket.socket) -> bool:
    """Whether the client hung up. A log request is the connection's only one, so anything
    readable on it now is the end of it."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    if not readable:
        return False
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except ssl.SSLWantReadError:
        return False  # part of a TLS record: not an end yet
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        sock.settimeout(timeout)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("kubelet API: %s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        parts = url.path.split("/")
        self.close_connection = True
        try:
            if url.path == "/healthz":
                self._reply(200, "ok")
            elif len(parts) == 5 and parts[0] == "" and parts[1] == "containerLogs":
                ns, pod, container = (unquote(p) for p in parts[2:])
                self._logs(ns, pod, container, parse_qs(url.query, keep_blank_values=True))
            else:
                self._reply(404, f"{url.path}: not served by the dev cluster's pod runner")
        except LogRequestError as e:
            self._reply(e.status, e.message)
        except (_ClientGone, OSError) as e:
            log.debug("kubelet API: %s abandoned: %s", self.path, e)

    def _reply(self, status: int, text: str) -> None:
        body = (text + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _logs(self, ns: str, pod: str, container: str, params: dict[str, list[str]]) -> None:
        entry = self.server.lookup(ns, pod)
        if entry is None:
            raise LogRequestError(404, f'pod "{ns}/{pod}" has no container log on this node')
        if entry.container is not None and container != entry.container:
            raise LogRequestError(
                400,
                f'container "{container}" in pod "{pod}" does not run: the dev cluster runs '
                f'only the first container ("{entry.container}")',
            )
        query = parse_log_query(params, container, pod)
        try:
            f = open(entry.path, "rb")  # noqa: SIM115 (closed below, after the headers)
        except FileNotFoundError:
            if entry.done is not None and entry.done.is_set():
                raise LogRequestError(
                    400, f'container "{container}" in pod "{pod}" has no log: it did not start'
                ) from None
            raise LogRequestError(
                400,
                f'container "{container}" in pod "{pod}" is waiting to start: ContainerCreating',
            ) from None
        done = entry.done

        def wait_more() -> bool:
            if done is None or done.wait(FOLLOW_POLL_S):
                return False
            if _peer_closed(self.connection):
                raise _ClientGone("the client closed the connection")
            return True

        with f:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close")
            self.end_headers()
            stream_log(f, query, self._chunk, wait_more)
            self.wfile.write(b"0\r\n\r\n")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, lookup: LogLookup, tls: ssl.SSLContext) -> None:
        self.lookup = lookup
        self.tls = tls
        super().__init__((HOST_IP, port), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks the address up (getfqdn) for a name it never needs here;
        # that lookup could leave the machine.
        socketserver.TCPServer.server_bind(self)
        self.server_name = HOST_IP
        self.server_port = self.server_address[1]

    def finish_request(self, request: Any, client_address: Any) -> None:
        # Runs in the connection's own thread, so a slow handshake blocks nobody else.
        sock: socket.socket = request
        sock.settimeout(HANDSHAKE_TIMEOUT_S)
        try:
            tls_sock = self.tls.wrap_socket(sock, server_side=True)
        except OSError as e:
            log.debug("kubelet API: TLS handshake with %s failed: %s", client_address, e)
            return
        tls_sock.settimeout(WRITE_TIMEOUT_S)
        try:
            super().finish_request(tls_sock, client_address)
        finally:
            tls_sock.settimeout(2.0)
            with contextlib.suppress(OSError, ValueError):
                tls_sock.unwrap()  # close_notify: the client sees a clean end of the stream
            tls_sock.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.exception("kubelet API: request from %s failed", client_address)


class KubeletServer:
    def __init__(self, port: int, lookup: LogLookup, tls: ssl.SSLContext) -> None:
        self.httpd = _Server(port, lookup, tls)
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, daemon=True, name="kubelet-api"
        )

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def start(self) -> None:
        self.thread.start()
        log.info(
            "kubelet API on https://%s:%d (client certificates: %s)",
            HOST_IP,
            self.port,
            "required" if self.httpd.tls.verify_mode == ssl.CERT_REQUIRED else "not asked for",
        )

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
