"""Shared helpers for the benchmarks: percentiles, free ports, a migrated temporary database,
a gunicorn launcher that waits for readiness, a small WebSocket client that offers
permessage-deflate like a browser, and cleanup of every subprocess on exit.

Benchmarks talk to 127.0.0.1 only; every loop is bounded in count and in time.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import os
import platform
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
MARIADB_SERVER = "mysql+pymysql://root@127.0.0.1:3306"
# BENCH_MARIADB_DATABASE lets two benches run side by side without dropping each other's data.
MARIADB_DATABASE = os.environ.get("BENCH_MARIADB_DATABASE", "bench")
if not MARIADB_DATABASE.startswith("bench"):
    raise SystemExit("BENCH_MARIADB_DATABASE must start with 'bench' (the bench drops it)")
MARIADB_URL = f"{MARIADB_SERVER}/{MARIADB_DATABASE}"
BENCH_REDIS_URL = "redis://127.0.0.1:6379/14"

_children: list[subprocess.Popen] = []
_tmpdirs: list[str] = []


# ---------------------------------------------------------------- environment


def clean_env() -> None:
    """The app reads DISCUX_* / DATABASE_URL from the environment: start from none of them."""
    for name in list(os.environ):
        if name.startswith("DISCUX_"):
            del os.environ[name]
    os.environ.pop("DATABASE_URL", None)
    os.environ["SECRET_KEY"] = "bench-secret-key-not-for-production"
    os.environ["DISCUX_INSTANCE_PATH"] = temp_dir("discux-bench-instance-")



def temp_dir(prefix: str = "discux-bench-") -> str:
    path = tempfile.mkdtemp(prefix=prefix)
    _tmpdirs.append(path)
    return path


clean_env()


def machine() -> str:
    mem_kib = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    return (f"{os.cpu_count()} cores, {mem_kib / 1024 / 1024:.1f} GiB RAM, "
            f"Python {platform.python_version()}")


def engine_name(url: str) -> str:
    return "SQLite" if url.startswith("sqlite") else "MariaDB"


# ---------------------------------------------------------------- numbers


def percentile(values, p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty sequence."""
    data = sorted(values)
    if not data:
        return float("nan")
    rank = max(1, min(len(data), int(-(-p * len(data) // 100))))
    return data[rank - 1]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def table(title: str, header: list[str], rows: list[list]) -> None:
    cells = [header] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    print(f"\n{title}")
    for n, row in enumerate(cells):
        print("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
        if n == 0:
            print("  " + "  ".join("-" * w for w in widths))


def verdict(name: str, figure: str, baseline: str, ratio: float, target: str, ok: bool) -> None:
    print(f"bench {name}: {figure} vs baseline {baseline} = {ratio:.2f}x "
          f"(target {target}) {'PASS' if ok else 'MISS'}", flush=True)


def header(name: str, **facts) -> None:
    print(f"== bench {name} == {machine()}; os.cpu_count()={os.cpu_count()}")
    for key, value in facts.items():
        print(f"   {key}: {value}")
    sys.stdout.flush()


# ---------------------------------------------------------------- ports & processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raise_nofile(wanted: int = 65536) -> int:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(max(soft, wanted), hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


def spawn(args: list[str], env: dict | None = None, **kwargs) -> subprocess.Popen:
    """A subprocess in its own process group, killed at exit whatever happens."""
    proc = subprocess.Popen(args, env=env, start_new_session=True, cwd=str(ROOT), **kwargs)
    _children.append(proc)
    return proc


def stop(proc: subprocess.Popen, timeout: float = 5.0) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


@atexit.register
def _cleanup() -> None:
    for proc in _children:
        with contextlib.suppress(Exception):
            stop(proc, 3.0)
    for path in _tmpdirs:
        shutil.rmtree(path, ignore_errors=True)


def _on_signal(signum, _frame):
    raise SystemExit(128 + signum)


signal.signal(signal.SIGTERM, _on_signal)


def wait_http(port: int, path: str = "/login", timeout: float = 30.0,
              proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before it was ready")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
                      .encode())
            s.settimeout(2)
            if s.recv(12).startswith(b"HTTP/1."):
                return
        time.sleep(0.1)
    raise RuntimeError(f"server on port {port} not ready after {timeout} s")


def gunicorn(app: str, port: int, *, threads: int, env_extra: dict | None = None,
             worker_connections: int | None = None, timeout: float = 60.0,
             log: str | None = None) -> subprocess.Popen:
    """One gunicorn gthread worker serving `app` (module:attr) on 127.0.0.1:port."""
    env = dict(os.environ)
    env["DISCUX_BASE_URL"] = f"http://127.0.0.1:{port}"  # required outside demo mode
    env.update(env_extra or {})
    args = [PYTHON, "-m", "gunicorn", "-k", "gthread", "-w", "1", "--threads", str(threads),
            "--worker-connections", str(worker_connections or max(threads * 2, 1000)),
            "-b", f"127.0.0.1:{port}", "--timeout", "600", "--graceful-timeout", "2",
            "--log-level", "warning", "--backlog", "4096", app]
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
    proc = spawn(args, env=env, stdout=out, stderr=out if log else None)
    wait_http(port, timeout=timeout, proc=proc)
    profile_dir = os.environ.get("BENCH_PROFILE")
    if profile_dir:  # py-spy (requirements-dev.txt) samples the worker until it exits
        out = os.path.join(profile_dir, f"{app.split(':')[0]}-{port}.txt")
        spawn([str(Path(PYTHON).parent / "py-spy"), "record", "-p", str(worker_pid(proc)),
               "-f", "raw", "-r", "1000", "-o", out], stdout=subprocess.DEVNULL,
              stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        print(f"   profiling the worker with py-spy into {out}")
    return proc


def worker_pid(master: subprocess.Popen, timeout: float = 10.0) -> int:
    """The (single) gunicorn worker's pid."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            kids = Path(f"/proc/{master.pid}/task/{master.pid}/children").read_text().split()
            if kids:
                return int(kids[0])
        time.sleep(0.05)
    raise RuntimeError("no gunicorn worker found")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# ---------------------------------------------------------------- databases


def sqlite_url(path: str | None = None) -> str:
    return f"sqlite:///{path or os.path.join(temp_dir('discux-bench-db-'), 'bench.db')}"


def reset_mariadb() -> str:
    """Drop and recreate the bench database (`bench…` only, never `test` or `test_*`)."""
    import pymysql

    conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{MARIADB_DATABASE}`")
            cur.execute(f"CREATE DATABASE `{MARIADB_DATABASE}` "
                        "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    finally:
        conn.close()
    return MARIADB_URL


def mariadb_available() -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", 3306), 1):
        return True
    return False


def database_urls(engine: str) -> list[str]:
    """`sqlite`, `mariadb` or `both` → fresh database URLs (MariaDB reset each time)."""
    urls = []
    if engine in ("sqlite", "both"):
        urls.append("sqlite")
    if engine in ("mariadb", "both"):
        if mariadb_available():
            urls.append("mariadb")
        else:
            print("   (MariaDB not reachable on 127.0.0.1:3306: skipped)")
    return urls


def fresh_database(kind: str) -> str:
    return sqlite_url() if kind == "sqlite" else reset_mariadb()


def app_config(url: str, **overrides) -> dict:
    config = {
        "SQLALCHEMY_DATABASE_URI": url,
        "DISCUX_DEV_LOGIN": False,
        "DISCUX_BASE_URL": "http://127.0.0.1",  # required outside demo mode; benches serve there
        "TRUSTED_HOSTS": ["127.0.0.1", "localhost"],  # ...and the test client calls itself localhost
        "RATELIMIT_ENABLED": False,
        "SERVER_NAME": None,
    }
    config.update(overrides)
    return config


def make_app(url: str, migrate: bool = False, **overrides):
    from discux import create_app

    app = create_app(app_config(url, **overrides))
    if migrate:
        from flask_migrate import upgrade

        from discux.extensions import db

        with app.app_context():
            upgrade()
            db.engine.dispose()
    return app


def server_env(url: str, **extra) -> dict:
    env = {"DATABASE_URL": url, "SECRET_KEY": os.environ["SECRET_KEY"],
           "DISCUX_INSTANCE_PATH": os.environ["DISCUX_INSTANCE_PATH"]}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def people(app, count: int, plan: str = "pro"):
    """`count` users with session cookies: [(user_id, raw_token)]."""
    from tests.support import factories

    out = []
    with app.app_context():
        for _ in range(count):
            user = factories.create_user(plan=plan)
            out.append((user.id, factories.create_session_token(user.id)))
    return out


# ---------------------------------------------------------------- a raw WebSocket client


class WSClient:
    """A blocking-handshake, non-blocking-read WebSocket client on a raw socket.

    It offers `permessage-deflate; client_max_window_bits` exactly as Chromium does, so the server
    sees what it sees from browsers. Reading is split in two so thousands of these can be served
    by one epoll loop: `feed()` only timestamps and splits frames (cheap), `decode()` inflates
    later (permessage-deflate with context takeover must inflate every frame in order).
    """

    OFFER = "permessage-deflate; client_max_window_bits"

    def __init__(self, port: int, path: str, cookie: str | None = None, deflate: bool = True,
                 rcvbuf: int | None = None, timeout: float = 30.0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket",
                 "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13",
                 f"Origin: http://127.0.0.1:{port}"]
        if deflate:
            lines.append(f"Sec-WebSocket-Extensions: {self.OFFER}")
        if cookie:
            lines.append(f"Cookie: {cookie}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during handshake")
            head += chunk
        raw_head, self.buf = head.split(b"\r\n\r\n", 1)
        status_line, *header_lines = raw_head.decode("latin-1").split("\r\n")
        self.status = int(status_line.split()[1])
        if self.status != 101:
            raise ConnectionError(f"handshake refused: {status_line}")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        self.extensions = headers.get("sec-websocket-extensions", "")
        self.deflate = "permessage-deflate" in self.extensions
        self.no_context_takeover = "server_no_context_takeover" in self.extensions
        self.frames: list[tuple[float, int, bool, bytes]] = []  # (t, opcode, rsv1, payload)
        self.data_frames = 0
        self.last_data_at = 0.0
        self.closed_code: int | None = None
        self.eof = False
        self._inflater = zlib.decompressobj(-15)
        self.sock.setblocking(False)

    def fileno(self) -> int:
        return self.sock.fileno()

    def read_available(self, now: float | None = None) -> int:
        """Read what the kernel holds; split complete frames (timestamped `now`)."""
        got = 0
        while True:
            try:
                chunk = self.sock.recv(262144)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self.eof = True
                break
            if not chunk:
                self.eof = True
                break
            got += len(chunk)
            self.buf += chunk
            if len(chunk) < 262144:
                break
        if got or self.buf:
            self._split(now if now is not None else time.perf_counter())
        return got

    def _split(self, now: float) -> None:
        buf = self.buf
        pos = 0
        while len(buf) - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length = b1 & 0x7F
            offset = 2
            if length == 126:
                if len(buf) - pos < 4:
                    break
                length = struct.unpack_from("!H", buf, pos + 2)[0]
                offset = 4
            elif length == 127:
                if len(buf) - pos < 10:
                    break
                length = struct.unpack_from("!Q", buf, pos + 2)[0]
                offset = 10
            end = pos + offset + length
            if end > len(buf):
                break
            opcode = b0 & 0x0F
            payload = bytes(buf[pos + offset:end])
            self.frames.append((now, opcode, bool(b0 & 0x40), payload))
            if opcode in (0x1, 0x2, 0x0) and b0 & 0x80:
                self.data_frames += 1
                self.last_data_at = now
            elif opcode == 0x8:
                self.closed_code = struct.unpack_from("!H", payload)[0] if len(payload) >= 2 \
                    else 1005
            elif opcode == 0x9:  # ping → pong (masked, as a client must)
                with contextlib.suppress(OSError):
                    self._send_frame(0xA, payload)
            pos = end
        self.buf = buf[pos:]

    def texts(self) -> list[tuple[float, str]]:
        """Every complete data message so far, inflated, with its arrival time (then forgets)."""
        out = []
        parts: list[bytes] = []
        compressed = False
        for t, opcode, rsv1, payload in self.frames:
            if opcode in (0x1, 0x2):
                parts, compressed = [payload], rsv1
            elif opcode == 0x0:
                parts.append(payload)
            else:
                continue
            data = b"".join(parts)
            if compressed:
                data = self._inflater.decompress(data + b"\x00\x00\xff\xff")
                if self.no_context_takeover:
                    self._inflater = zlib.decompressobj(-15)
            out.append((t, data.decode("utf-8", "replace")))
        self.frames = []
        return out

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.setblocking(True)
        try:
            self.sock.sendall(head + mask + masked)
        finally:
            self.sock.setblocking(False)

    def send_text(self, text: str) -> None:
        self._send_frame(0x1, text.encode())

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._send_frame(0x8, struct.pack("!H", 1000))
        with contextlib.suppress(OSError):
            self.sock.close()


def cookie_for(token: str) -> str:
    from discux.auth.sessions import COOKIE_NAME

    return f"{COOKIE_NAME}={token}"


class ListenerPool:
    """Many WSClients served by one epoll loop in the calling thread (no GIL ping-pong)."""

    def __init__(self):
        import select

        self.ep = select.epoll()
        self.clients: dict[int, WSClient] = {}

    def add(self, client: WSClient) -> None:
        import select

        self.clients[client.fileno()] = client
        self.ep.register(client.fileno(), select.EPOLLIN)

    def __len__(self) -> int:
        return len(self.clients)

    def pump(self, timeout: float) -> int:
        """Read whatever arrives within `timeout` seconds; returns sockets that had data."""
        events = self.ep.poll(timeout)
        now = time.perf_counter()
        for fd, _ in events:
            client = self.clients.get(fd)
            if client is not None:
                client.read_available(now)
        return len(events)

    def settle(self, quiet: float = 1.0, limit: float = 60.0) -> None:
        """Read until nothing arrived for `quiet` seconds (presence storms after connecting)."""
        deadline = time.monotonic() + limit
        last = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - last < quiet:
            if self.pump(0.1):
                last = time.monotonic()

    def counts(self) -> dict[int, int]:
        return {fd: c.data_frames for fd, c in self.clients.items()}

    def wait_all(self, before: dict[int, int], timeout: float = 10.0,
                 extra: HTTPRequest | None = None) -> float | None:
        """Pump until every client got one more data frame than in `before` (and `extra`, an
        in-flight HTTP request, is answered). The time the last one arrived, or None."""
        pending = {fd for fd in self.clients if self.clients[fd].data_frames <= before[fd]}
        if extra is not None:
            self.ep.register(extra.sock.fileno(), __import__("select").EPOLLIN)
        deadline = time.perf_counter() + timeout
        try:
            while (pending or (extra is not None and not extra.done)) \
                    and time.perf_counter() < deadline:
                events = self.ep.poll(min(0.5, max(0.0, deadline - time.perf_counter())))
                now = time.perf_counter()
                for fd, _ in events:
                    client = self.clients.get(fd)
                    if client is not None:
                        client.read_available(now)
                        if fd in pending and client.data_frames > before[fd]:
                            pending.discard(fd)
                    elif extra is not None and fd == extra.sock.fileno():
                        extra.read()
                        if extra.done:
                            self.ep.unregister(fd)
                            extra.sock.close()
        finally:
            if extra is not None and not extra.done:
                with contextlib.suppress(OSError):
                    self.ep.unregister(extra.sock.fileno())
                extra.sock.close()
        if pending:
            return None
        arrivals = [c.last_data_at for c in self.clients.values()]
        self.first_arrival = min(arrivals)
        return max(arrivals)

    def close(self) -> None:
        for client in self.clients.values():
            client.close()
        self.ep.close()


class HTTPRequest:
    """One HTTP/1.1 request on a fresh socket (Connection: close), read without blocking."""

    def __init__(self, port: int, method: str, path: str, body: bytes = b"",
                 headers: dict | None = None):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        head = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close",
                f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        self.sock.setblocking(False)
        self.data = b""
        self.done = False

    def read(self) -> None:
        while True:
            try:
                chunk = self.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                chunk = b""
            if not chunk:
                self.done = True
                return
            self.data += chunk

    @property
    def status(self) -> int:
        try:
            return int(self.data.split(b" ", 2)[1])
        except (IndexError, ValueError):
            return 0
