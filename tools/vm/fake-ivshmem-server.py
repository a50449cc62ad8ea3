#!/usr/bin/env python3
"""A stand-in for the mediator's ivshmem server, for testing the VM harness.

    tools/vm/fake-ivshmem-server.py SOCKET SIZE_MB [--vectors N]

Listens on the UNIX socket SOCKET and hands every client (QEMU's
`-device ivshmem-doorbell,chardev=...`) the handshake of QEMU's ivshmem server
protocol, as vgpu's mediator does (shared/notes/ivshmem.md): int64 LE messages,
some with one fd (SCM_RIGHTS):

    0 (protocol version), 1 (the client's id), -1 + the memfd,
    0 + host_ev[0..N-1] (peer 0 = this server: the guest's doorbells to it),
    1 + guest_ev[0..N-1] (the client's own interrupt vectors)

The memfd (SIZE_MB MiB: a power of two, or QEMU aborts) starts with the 8-byte
magic "VGPUSTB1" (little-endian 0x3142545355504756) at offset 0. Every time the
guest rings the Doorbell for peer 0 and vector v, host_ev[v] fires and the server
logs `doorbell: vector v fired (count C); bytes 8..15 of the region: "..."`.
Logs go to stdout, one flushed line each; `fake-ivshmem-server: listening on ...`
says it is ready. Runs until SIGTERM/SIGINT. Each client gets its own memfd and
eventfds; a closed client is logged and forgotten.
"""
import argparse
import mmap
import os
import select
import signal
import socket
import struct
import sys

MAGIC = b"VGPUSTB1"  # == struct.pack("<Q", 0x3142545355504756)
CLIENT_ID = 1
SERVER_ID = 0


def log(msg):
    print(f"fake-ivshmem-server: {msg}", flush=True)


def send_msg(conn, value, fd=None):
    data = struct.pack("<q", value)
    if fd is None:
        conn.sendall(data)
    else:
        socket.send_fds(conn, [data], [fd])


class Client:
    def __init__(self, conn, size, vectors, number):
        self.conn = conn
        self.number = number
        self.memfd = os.memfd_create(f"fake-ivshmem-{number}", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        os.ftruncate(self.memfd, size)
        self.region = mmap.mmap(self.memfd, size)
        self.region[0:8] = MAGIC
        # Sealed like the mediator's region: nobody resizes it under QEMU.
        import fcntl
        fcntl.fcntl(self.memfd, fcntl.F_ADD_SEALS,
                    fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL)
        self.host_ev = [os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK) for _ in range(vectors)]
        self.guest_ev = [os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK) for _ in range(vectors)]
        send_msg(conn, 0)  # protocol version
        send_msg(conn, CLIENT_ID)
        send_msg(conn, -1, self.memfd)
        for fd in self.host_ev:
            send_msg(conn, SERVER_ID, fd)
        for fd in self.guest_ev:
            send_msg(conn, CLIENT_ID, fd)

    def close(self):
        for fd in self.host_ev + self.guest_ev + [self.memfd]:
            os.close(fd)
        self.region.close()
        self.conn.close()


def drain_doorbell(c, v):
    try:
        count = struct.unpack("<Q", os.read(c.host_ev[v], 8))[0]
    except BlockingIOError:
        return
    tail = bytes(c.region[8:16])
    log(f"client {c.number}: doorbell: vector {v} fired (count {count}); "
        f"bytes 8..15 of the region: {tail!r}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("socket")
    ap.add_argument("size_mb", type=int)
    ap.add_argument("--vectors", type=int, default=2)
    args = ap.parse_args()
    size = args.size_mb << 20
    if args.size_mb <= 0 or size & (size - 1):
        sys.exit(f"fake-ivshmem-server: error: SIZE_MB must be a power of two (QEMU aborts otherwise), not {args.size_mb}")

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))

    if os.path.exists(args.socket):
        os.unlink(args.socket)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(args.socket)
    srv.listen(8)
    log(f"listening on {args.socket} (region {args.size_mb} MiB, {args.vectors} vectors, "
        f"magic {MAGIC.decode()} = 0x{struct.unpack('<Q', MAGIC)[0]:016x})")

    poller = select.poll()
    poller.register(srv, select.POLLIN)
    clients = {}   # conn fd -> Client
    eventfds = {}  # eventfd -> (Client, vector)
    number = 0
    while not stop:
        try:
            events = poller.poll(200)
        except InterruptedError:
            continue
        for fd, ev in events:
            if fd == srv.fileno():
                conn, _ = srv.accept()
                number += 1
                try:
                    c = Client(conn, size, args.vectors, number)
                except OSError as e:
                    log(f"client {number}: handshake failed: {e}")
                    conn.close()
                    continue
                clients[conn.fileno()] = c
                poller.register(conn, select.POLLIN | select.POLLHUP)
                for v, efd in enumerate(c.host_ev):
                    eventfds[efd] = (c, v)
                    poller.register(efd, select.POLLIN)
                log(f"client {number}: connected; sent version 0, id {CLIENT_ID}, the memfd, "
                    f"{args.vectors} eventfds for peer {SERVER_ID} and {args.vectors} for peer {CLIENT_ID}")
            elif fd in eventfds:
                drain_doorbell(*eventfds[fd])
            elif fd in clients:
                c = clients[fd]
                data = b""
                if ev & select.POLLIN:
                    try:
                        data = c.conn.recv(64)
                    except OSError:
                        data = b""
                if data:
                    log(f"client {c.number}: ignoring {len(data)} unexpected bytes")
                    continue
                for v in range(len(c.host_ev)):  # doorbells rung just before it left
                    drain_doorbell(c, v)
                log(f"client {c.number}: disconnected")
                poller.unregister(fd)
                for efd in c.host_ev:
                    poller.unregister(efd)
                    del eventfds[efd]
                del clients[fd]
                c.close()
    log("stopping")
    for c in clients.values():
        c.close()
    srv.close()
    os.unlink(args.socket)


if __name__ == "__main__":
    main()
