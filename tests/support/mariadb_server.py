"""A throwaway MariaDB in a temporary data directory on a free port, for tests that stop,
kill or restore a database server without touching the one the rest of the suite uses."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pymysql
import pytest

from tests.support.redis_server import free_port

INSTALL_DB = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
SERVER = (shutil.which("mariadbd") or shutil.which("mysqld")
          or next((p for p in ("/usr/sbin/mariadbd", "/usr/sbin/mysqld") if Path(p).exists()), None))

# Tests that start their own server: skipped on a machine without the binaries.
needs_mariadb_binaries = pytest.mark.skipif(
    not (INSTALL_DB and SERVER), reason="mariadb-install-db and mariadbd are not installed")


class ThrowawayMariaDB:
    """`start()`, `kill()` (as a crash would), `stop()`, `url(database)`, `create_database()`."""

    def __init__(self) -> None:
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="discux-mariadb-"))
        self.datadir = self.directory / "data"
        self.socket = self.directory / "mariadb.sock"
        self.process: subprocess.Popen | None = None
        self.log = self.directory / "server.log"

    def start(self) -> ThrowawayMariaDB:
        if not self.datadir.exists():
            # --no-defaults: the system my.cnf forces user=mysql and its own datadir.
            subprocess.run(
                [INSTALL_DB, "--no-defaults", f"--datadir={self.datadir}", "--user=root",
                 "--auth-root-authentication-method=normal", "--skip-test-db"],
                check=True, capture_output=True, timeout=120)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [SERVER, "--no-defaults", f"--datadir={self.datadir}", f"--port={self.port}",
                 f"--socket={self.socket}", "--bind-address=127.0.0.1", "--user=root",
                 f"--pid-file={self.directory / 'mariadb.pid'}", "--skip-name-resolve",
                 "--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M",
                 "--performance-schema=OFF", "--character-set-server=utf8mb4",
                 "--collation-server=utf8mb4_unicode_ci"],
                stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                pymysql.connect(host="127.0.0.1", port=self.port, user="root",
                                connect_timeout=1).close()
                return self
            except pymysql.err.OperationalError:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"mariadbd exited at start: {self.log.read_text()[-2000:]}") from None
                if time.monotonic() > deadline:
                    raise RuntimeError("mariadbd did not answer within 60 s") from None
                time.sleep(0.1)

    def url(self, database: str = "discux") -> str:
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str = "discux") -> str:
        connection = pymysql.connect(host="127.0.0.1", port=self.port, user="root")
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"CREATE DATABASE IF NOT EXISTS `{name}` "
                               "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        finally:
            connection.close()
        return self.url(name)

    def kill(self) -> None:
        """Stop the server the way a crash or an OOM kill would: at once, mid-whatever."""
        if self.process and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)
