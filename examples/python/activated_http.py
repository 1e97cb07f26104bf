#!/usr/bin/env python3
"""A socket-activated HTTP server, standard library only: it binds nothing itself.

It takes the listening socket on fd 3 as systemd's socket activation (and warren's `listen`)
passes it, after the check every socket-activation library makes (`sd_listen_fds`, Rust's
`listenfd`): LISTEN_PID must be this process's pid and LISTEN_FDS at least 1. It says READY=1
on NOTIFY_SOCKET once it serves, and on SIGTERM stops accepting, finishes the requests it has
and exits 0: what a rolling restart needs of a program.

    [programs.web]
    command = "python3"
    args = ["examples/python/activated_http.py"]
    listen = ["tcp:127.0.0.1:8080"]
    ready = "notify"
    restart_mode = "rolling"

START_DELAY (seconds, default 0) makes it wait before serving: a slow start, for tests.
"""

import http.server
import os
import signal
import socket
import sys
import threading
import time

SD_LISTEN_FDS_START = 3


def passed_socket():
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        sys.exit(f"LISTEN_PID is {os.environ.get('LISTEN_PID')!r}, not this process ({os.getpid()}): no socket passed")
    count = int(os.environ.get("LISTEN_FDS", "0"))
    if count < 1:
        sys.exit("LISTEN_FDS is not set: no socket passed")
    names = os.environ.get("LISTEN_FDNAMES", "")
    sock = socket.socket(fileno=SD_LISTEN_FDS_START)
    # Non-blocking: during a rolling restart two instances wait on the same socket, and the one
    # that loses the race for a connection must not block in accept() (which would keep it
    # from seeing its stop). accept() still hands out blocking connections.
    sock.setblocking(False)
    print(f"listening on fd 3 (LISTEN_FDS={count}, LISTEN_FDNAMES={names}, LISTEN_PID matches)", flush=True)
    return sock


class Handler(http.server.BaseHTTPRequestHandler):
    # A connection that sends nothing must not hold the drain at stop (server_close joins
    # every handler) past a few seconds, nor a thread forever.
    timeout = 3

    def do_GET(self):
        body = f"hello from {os.getpid()}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    # Joined at server_close: the requests in progress are finished before the exit.
    daemon_threads = False
    block_on_close = True


def notify(state):
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    if path.startswith("@"):
        path = "\0" + path[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(state.encode(), path)


def main():
    # The stop signals are blocked before any thread starts (every thread inherits the mask)
    # and taken by sigwait below, in plain code. A Python signal handler would run wherever
    # the main thread happened to be: inside threading's bookkeeping of a finished handler
    # thread it holds a lock that a thread started from the handler needs, and the instance
    # hangs, never seeing its stop (a rolling restart then ends in SIGKILL).
    stops = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stops)
    sock = passed_socket()
    time.sleep(float(os.environ.get("START_DELAY", "0")))
    server = Server(sock.getsockname(), Handler, bind_and_activate=False)
    server.socket.close()
    server.socket = sock

    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    serving.start()
    notify("READY=1")
    signal.sigwait(stops)
    notify("STOPPING=1")
    # Stops accepting and waits for serve_forever to return; server_close then finishes the
    # requests in progress.
    server.shutdown()
    serving.join()
    server.server_close()
    print("drained, exiting", flush=True)


if __name__ == "__main__":
    main()
