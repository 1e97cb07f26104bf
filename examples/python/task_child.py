#!/usr/bin/env python3
"""A warren child in Python, standard library only: see docs/ANY-LANGUAGE.md.

Serves Task.Get as newline-delimited JSON-RPC (Go's net/rpc/jsonrpc shape and JSON-RPC 2.0,
docs/PROTOCOL.md section 17) on the socket in WARREN_ENDPOINT, says READY=1 on NOTIFY_SOCKET, and
stops on SIGTERM, SIGINT or warren.Shutdown, removing its socket. In warren.toml, give it
ready = "notify" and rpc = "json"; then `warren call NAME Task.Get '"new_id"'` reaches it.
"""
import json, os, signal, socket, socketserver, threading

STOP = {signal.SIGTERM, signal.SIGINT}


class Failure(Exception):
    """An error reply: JSON-RPC 2.0 code, warren's code name and number, message."""
    def __init__(self, v2_code, name, code, message):
        super().__init__(message)
        self.v2_code, self.name, self.code = v2_code, name, code


def task_get(todo_id):
    if not isinstance(todo_id, str):
        raise Failure(-32602, "BAD_ARGUMENT", 3, "Task.Get takes a string")
    return {"id": todo_id}


METHODS = {"Task.Get": task_get, "warren.Shutdown": lambda _: os.kill(os.getpid(), signal.SIGTERM)}


def answer(line):
    """The reply to one request line, or None for a notification."""
    try:
        request = json.loads(line)
        v2, rid, method = request.get("jsonrpc") == "2.0", request.get("id"), request.get("method")
    except (ValueError, AttributeError):
        return {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "not a JSON object"}}
    params = request.get("params")
    arg = params[0] if isinstance(params, list) and len(params) == 1 else params  # Go sends [arg]
    try:
        if method not in METHODS:
            raise Failure(-32601, "UNKNOWN_METHOD", 2, f"no method {method!r}")
        result, error = METHODS[method](arg), None
    except Failure as failure:
        result, error = None, failure
    if ("id" not in request) if v2 else rid is None:
        return None  # a notification: run, never answered
    if v2 and error:
        return {"jsonrpc": "2.0", "id": rid, "error": {"code": error.v2_code, "message": str(error)}}
    if v2:
        return {"jsonrpc": "2.0", "id": rid, "result": result}
    if error:  # Go's client accepts only a string error, and only a non-null result
        return {"id": rid, "result": None, "error": f"{error.name} ({error.code}): {error}"}
    return {"id": rid, "result": {} if result is None else result, "error": None}


class Connection(socketserver.StreamRequestHandler):
    def handle(self):
        try:
            for line in self.rfile:  # one request per line, answered in order
                reply = answer(line) if line.strip() else None
                if reply is not None:
                    self.wfile.write(json.dumps(reply).encode() + b"\n")
        except ConnectionError:
            pass  # the peer left


def main():
    # Blocked in every thread (threads inherit the mask) and taken by sigwait below: a signal
    # that lands on a worker thread would not wake a main thread blocked in a wait.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP)
    path = os.environ["WARREN_ENDPOINT"].removeprefix("unix:")
    server = socketserver.ThreadingUnixStreamServer(path, Connection)
    server.daemon_threads = True
    os.chmod(path, 0o600)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    if notify := os.environ.get("NOTIFY_SOCKET"):  # systemd's readiness protocol
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(b"READY=1", "\0" + notify[1:] if notify.startswith("@") else notify)
    print(f"serving Task.Get on {path}", flush=True)
    signal.sigwait(STOP)  # SIGTERM, SIGINT, or warren.Shutdown (which sends SIGTERM)
    server.shutdown()
    server.server_close()
    os.unlink(path)
    print(f"stopped; removed {path}", flush=True)


if __name__ == "__main__":
    main()
