#!/usr/bin/env python3
"""Minimal warren RPC v1 client (JSON codec), standard library only; see docs/PROTOCOL.md.

    python3 warren_client.py SOCKET METHOD JSON_ARG [DEADLINE_SECONDS]
    python3 warren_client.py /run/user/1000/app.sock Task.Get '"new_id"' 1.0

Prints the JSON result (exit 0); on an ERROR prints "error <code> <NAME>: <message>" to
stderr (exit 3); on a refusal (GOODBYE) or a lost connection prints the reason (exit 1).
As a module: conn = connect(path); call(conn, "Task.Get", "new_id", timeout=1.0); close(conn)
"""
from __future__ import annotations

import contextlib, json, math, socket, struct, sys, time
from typing import Any

__all__ = ["connect", "call", "close", "Conn", "RpcError", "ConnectionClosed"]

MAGIC, VERSION, MAX_FRAME, FEATURES, JSON_CODEC = b"\xf7WRP", 1, 16 * 1024 * 1024, 0xF, 2
HELLO, WELCOME, REQUEST, RESPONSE, ERROR, CANCEL = 0x01, 0x02, 0x10, 0x11, 0x12, 0x13
NOTIFY, PING, PONG, GOODBYE = 0x20, 0x30, 0x31, 0x40
HEADER = struct.Struct(">IBBI")  # body_len, kind, flags, id
NAMES = dict(enumerate("NORMAL UNKNOWN_SERVICE UNKNOWN_METHOD BAD_ARGUMENT DEADLINE_EXCEEDED CANCELLED "
                       "SHUTTING_DOWN INTERNAL FRAME_TOO_LARGE PROTOCOL_ERROR UNSUPPORTED_VERSION "
                       "PERMISSION_DENIED UNSUPPORTED_CODEC OVERLOADED".split()))


class RpcError(Exception):
    """An ERROR frame, or a call that failed locally (deadline, shutting down, too large)."""
    what = "error"

    def __init__(self, code: int | None, message: str, data: Any = None) -> None:
        name = NAMES.get(code, "APPLICATION" if (code or 0) >= 1000 else "RESERVED")
        super().__init__(f"connection error: {message}" if code is None else f"{self.what} {code} {name}: {message}")
        self.code, self.message, self.data = code, message, data


class ConnectionClosed(RpcError):
    """A GOODBYE was received or sent (code set), or the connection failed (code None)."""
    what = "goodbye"


class Conn:
    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.buf, self.next_id, self.shutting_down = sock, bytearray(), 1, False
        self.max_frame = self.features = 0

    def send(self, kind: int, fid: int, body: bytes = b"") -> None:
        self.sock.sendall(HEADER.pack(len(body), kind, 0, fid) + body)

    def fill(self, n: int) -> None:  # buffered, so a timeout in mid-frame loses nothing
        while len(self.buf) < n:
            if not (chunk := self.sock.recv(65536)):
                raise ConnectionClosed(None, "peer shut down" if self.shutting_down else "connection closed by peer")
            self.buf += chunk

    def read_frame(self) -> tuple[int, int, bytes]:
        self.fill(HEADER.size)
        body_len, kind, _flags, fid = HEADER.unpack_from(self.buf)
        if body_len > MAX_FRAME:  # checked before reading the body
            self.abort(8, f"frame too large ({body_len} > {MAX_FRAME})")
        self.fill(HEADER.size + body_len)
        body = bytes(self.buf[HEADER.size:HEADER.size + body_len])
        del self.buf[:HEADER.size + body_len]
        return kind, fid, body

    def abort(self, code: int, reason: str) -> None:
        with contextlib.suppress(OSError):
            self.send(GOODBYE, 0, struct.pack(">I", code) + reason.encode())
        self.sock.close()
        raise ConnectionClosed(code, reason)


def _goodbye(body: bytes) -> ConnectionClosed:
    return ConnectionClosed(struct.unpack_from(">I", body)[0], body[4:].decode(errors="replace"))


def connect(path: str, hello_timeout: float = 10.0) -> Conn:
    """Connect to "unix:/p.sock" or "/p.sock"; send preface + HELLO, expect preface + WELCOME."""
    conn = Conn(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
    conn.sock.settimeout(hello_timeout)
    conn.sock.connect(path.removeprefix("unix:"))
    hello = struct.pack(">IIBB", MAX_FRAME, FEATURES, 1, JSON_CODEC)
    with contextlib.suppress(OSError):  # a refusing server may close early; its GOODBYE is still readable
        conn.sock.sendall(MAGIC + bytes([VERSION]) + HEADER.pack(len(hello), HELLO, 0, 0) + hello)
    conn.fill(5)
    preface = bytes(conn.buf[:5])
    del conn.buf[:5]
    if preface != MAGIC + bytes([VERSION]):
        conn.sock.close()
        bad = "bad magic" if preface[:4] != MAGIC else f"unsupported server protocol version {preface[4]}"
        raise ConnectionClosed(None, bad)
    kind, _, body = conn.read_frame()
    if kind == GOODBYE:
        conn.sock.close()
        raise _goodbye(body)
    if kind != WELCOME or len(body) < 9 or body[8] != JSON_CODEC:
        conn.abort(9, "expected WELCOME choosing JSON")
    conn.max_frame, conn.features = struct.unpack_from(">II", body)
    if conn.features & ~FEATURES:
        conn.abort(9, "WELCOME features are not a subset of ours")
    return conn


def call(conn: Conn, method: str, arg: Any, timeout: float | None = None) -> Any:
    """Call method(arg); return the decoded reply or raise RpcError / ConnectionClosed."""
    if conn.shutting_down:
        raise RpcError(6, "server is shutting down")
    fid, conn.next_id = conn.next_id, conn.next_id % 0xFFFFFFFF + 1
    deadline = None if timeout is None else time.monotonic() + timeout
    timeout_us = max(1, math.ceil(timeout * 1e6)) if timeout is not None and conn.features & 0x1 else 0
    name, payload = method.encode(), json.dumps(arg, separators=(",", ":")).encode()
    if len(name) > 255:
        raise ValueError("method name longer than 255 bytes")
    if timeout is not None and timeout <= 0:
        raise RpcError(4, "deadline exceeded")  # already past: nothing is sent
    body = bytes([len(name)]) + name + struct.pack(">Q", timeout_us) + payload
    if len(body) > conn.max_frame:
        raise RpcError(8, f"frame too large ({len(body)} > {conn.max_frame})")
    conn.send(REQUEST, fid, body)
    while True:
        try:
            conn.sock.settimeout(None if deadline is None else max(deadline - time.monotonic(), 1e-6))
            kind, rid, body = conn.read_frame()
        except socket.timeout:  # local deadline: report at once and let the server stop work
            if conn.features & 0x2:
                conn.send(CANCEL, fid)
            raise RpcError(4, "deadline exceeded") from None
        if kind in (RESPONSE, ERROR) and rid != fid or kind in (PONG, NOTIFY):
            continue  # a late reply to an abandoned call, a pong, an event: ignored
        if kind == RESPONSE:
            return json.loads(body)
        if kind == ERROR:
            code, mlen = struct.unpack_from(">II", body)
            data = body[8 + mlen:]
            raise RpcError(code, body[8:8 + mlen].decode(errors="replace"), json.loads(data) if data else None)
        if kind == PING:
            conn.send(PONG, rid, body)
        elif kind == GOODBYE:
            if (bye := _goodbye(body)).code != 6:
                conn.sock.close()
                raise bye
            conn.shutting_down = True  # SHUTTING_DOWN: no new calls, but our reply still comes
        else:
            conn.abort(9, f"unexpected frame kind 0x{kind:02x}")


def close(conn: Conn) -> None:
    """Send GOODBYE NORMAL and close."""
    with contextlib.suppress(OSError):
        conn.send(GOODBYE, 0, struct.pack(">I", 0))
    conn.sock.close()


def main(argv: list[str]) -> int:
    if len(argv) not in (4, 5):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        conn = connect(argv[1])
        try:
            print(json.dumps(call(conn, argv[2], json.loads(argv[3]), float(argv[4]) if len(argv) == 5 else None)))
        finally:
            close(conn)
        return 0
    except RpcError as e:  # ERROR frame or local call failure -> 3; GOODBYE / connection lost -> 1
        print(e, file=sys.stderr)
        return 1 if isinstance(e, ConnectionClosed) else 3
    except (OSError, ValueError) as e:
        print(f"failed: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
