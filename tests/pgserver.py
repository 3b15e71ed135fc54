"""A throw-away PostgreSQL server for the tests, started from the Debian binaries.

The server runs from a fresh ``initdb`` cluster in a temporary directory, listens on a
free loopback TCP port and trusts every local connection (role ``leukotrack``, no
password). It is meant for tests only: durability is switched off for speed.

``initdb``, ``pg_ctl`` and ``postgres`` refuse to run as root. When the tests run as
root (containers, CI), the server commands run as an unprivileged user through
``runuser -u USER --``: ``postgres`` when that account exists, else ``nobody``. The
temporary directory is then handed over to that user with ``chown``; since a root-only
parent (pytest's ``/tmp/pytest-of-root`` is mode 0700) would still lock that user out,
the directory falls back to the system temporary directory when needed.
"""

from __future__ import annotations

import atexit
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

PG_BIN_ENV = "LEUKOTRACK_PG_BIN"
"""Environment variable naming a PostgreSQL ``bin`` directory to use instead of the newest."""

SUPERUSER = "leukotrack"
"""The bootstrap superuser created by ``initdb`` (trust authentication, no password)."""

TEST_DATABASE = "leukotrack_test"
"""The database created by :meth:`PostgresServer.start`."""

_DEBIAN_PG_ROOT = Path("/usr/lib/postgresql")
_REQUIRED_BINARIES = ("initdb", "pg_ctl", "postgres", "createdb")
_DATABASE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# sockaddr_un.sun_path holds 108 bytes; the socket file is SOCKDIR/.s.PGSQL.NNNNN
_MAX_SOCKET_DIR_LEN = 107 - len("/.s.PGSQL.65535")
_COMMAND_TIMEOUT = 120.0


def _version_key(path: Path) -> tuple[int, ...]:
    """Sort key for ``/usr/lib/postgresql/<version>`` directories (``15`` < ``16``)."""
    return tuple(int(part) for part in re.findall(r"\d+", path.name)) or (-1,)


def _has_server_binaries(bin_dir: Path) -> bool:
    """Whether ``bin_dir`` holds every executable :class:`PostgresServer` calls."""
    return all(os.access(bin_dir / name, os.X_OK) for name in _REQUIRED_BINARIES)


def find_pg_bin() -> Path | None:
    """Find a PostgreSQL ``bin`` directory holding the server binaries.

    Returns
    -------
    Path or None
        ``$LEUKOTRACK_PG_BIN`` when it is set and holds ``initdb``, ``pg_ctl``,
        ``postgres`` and ``createdb``, otherwise the newest
        ``/usr/lib/postgresql/<version>/bin`` that holds them, or None.
    """
    configured = os.environ.get(PG_BIN_ENV)
    if configured:
        candidate = Path(configured)
        return candidate if _has_server_binaries(candidate) else None
    if not _DEBIAN_PG_ROOT.is_dir():
        return None
    versions = sorted(_DEBIAN_PG_ROOT.iterdir(), key=_version_key, reverse=True)
    for version_dir in versions:
        if _has_server_binaries(version_dir / "bin"):
            return version_dir / "bin"
    return None


def free_port(host: str = "127.0.0.1") -> int:
    """Ask the kernel for a TCP port that is free right now.

    Parameters
    ----------
    host : str
        The address to bind to.

    Returns
    -------
    int
        A port number; another process may still take it before the server binds it.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def server_user() -> str | None:
    """The account that runs the server commands.

    Returns
    -------
    str or None
        None when the current process is not root (the commands run directly);
        ``postgres`` when running as root and that account exists, else ``nobody``.
    """
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise RuntimeError("running as root, but neither a 'postgres' nor a 'nobody' account exists")


def _clean_env() -> dict[str, str]:
    """The environment for the PostgreSQL commands: no ``PG*`` variables, C messages."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env["LC_ALL"] = "C"
    env["LANG"] = "C"
    return env


class PostgresServer:
    """A temporary PostgreSQL cluster with one test database.

    Use it as a context manager: the server starts on entry and is stopped, and its
    directory removed, on exit, also when the start failed half-way.

    Parameters
    ----------
    base_dir : Path
        Directory in which the temporary cluster directory is created. When running
        as root and the unprivileged server user cannot reach it, the system
        temporary directory is used instead.
    bin_dir : Path, optional
        PostgreSQL ``bin`` directory; :func:`find_pg_bin` when omitted.
    options : sequence of str, optional
        Extra server settings, each ``name=value``, passed as ``-c name=value``.

    Attributes
    ----------
    port : int or None
        The TCP port on 127.0.0.1, once started.
    workdir : Path or None
        The temporary directory holding ``data/``, ``sock/`` and ``server.log``.
    """

    def __init__(
        self,
        base_dir: Path,
        bin_dir: Path | None = None,
        options: Sequence[str] = (),
    ) -> None:
        found = bin_dir if bin_dir is not None else find_pg_bin()
        if found is None:
            raise RuntimeError(
                f"no PostgreSQL server binaries under {_DEBIAN_PG_ROOT}/*/bin "
                f"(install the postgresql package or set {PG_BIN_ENV})"
            )
        self.bin_dir = found
        self.base_dir = Path(base_dir)
        self.options = tuple(options)
        self.user = server_user()
        self.port: int | None = None
        self.workdir: Path | None = None
        self._started = False

    # -- paths ------------------------------------------------------------------

    def _require_workdir(self) -> Path:
        if self.workdir is None:
            raise RuntimeError("the PostgreSQL server has not been started")
        return self.workdir

    @property
    def data_dir(self) -> Path:
        """The cluster's data directory (``PGDATA``)."""
        return self._require_workdir() / "data"

    @property
    def socket_dir(self) -> Path:
        """The directory holding the server's Unix-domain socket."""
        return self._require_workdir() / "sock"

    @property
    def log_file(self) -> Path:
        """The server log written by ``pg_ctl -l``."""
        return self._require_workdir() / "server.log"

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the ``leukotrack_test`` database."""
        return self.database_url(TEST_DATABASE)

    def database_url(self, name: str) -> str:
        """SQLAlchemy URL of database ``name`` on this server.

        Parameters
        ----------
        name : str
            The database name.

        Returns
        -------
        str
            ``postgresql+psycopg://leukotrack@127.0.0.1:PORT/NAME``.
        """
        if self.port is None:
            raise RuntimeError("the PostgreSQL server has not been started")
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{name}"

    # -- commands ---------------------------------------------------------------

    def _run(
        self, args: Sequence[str | Path], *, as_server_user: bool
    ) -> subprocess.CompletedProcess[str]:
        """Run one command, as the server user when asked and running as root."""
        command = [str(arg) for arg in args]
        if as_server_user and self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        return subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=_clean_env(),
            # a root-only working directory (e.g. /root) breaks initdb and postgres
            cwd=self.workdir if self.workdir is not None else "/",
            timeout=_COMMAND_TIMEOUT,
            check=False,
        )

    def _reachable_by_server_user(self, directory: Path) -> bool:
        """Whether the server user can create entries in ``directory``."""
        if self.user is None:
            return os.access(directory, os.W_OK | os.X_OK)
        probe = ["runuser", "-u", self.user, "--", "test", "-w", str(directory), "-a"]
        probe += ["-x", str(directory)]
        return subprocess.run(probe, capture_output=True, check=False).returncode == 0

    def _make_workdir(self) -> Path:
        """Create the temporary directory and hand it to the server user."""
        candidates = [self.base_dir, Path(tempfile.gettempdir()), Path("/tmp")]
        for parent in candidates:
            if not parent.is_dir():
                continue
            workdir = Path(tempfile.mkdtemp(prefix="leukotrack-pg-", dir=parent))
            sock = workdir / "sock"
            if len(str(sock)) > _MAX_SOCKET_DIR_LEN:
                shutil.rmtree(workdir)
                continue
            sock.mkdir()
            if self.user is not None:
                shutil.chown(workdir, user=self.user, group=self._user_group())
                shutil.chown(sock, user=self.user, group=self._user_group())
            if self._reachable_by_server_user(workdir):
                return workdir
            shutil.rmtree(workdir)
        tried = ", ".join(str(path) for path in candidates)
        raise RuntimeError(
            f"user {self.user!r} cannot write a cluster directory in any of: {tried}"
        )

    def _user_group(self) -> int:
        """The primary group id of the server user."""
        if self.user is None:
            return os.getgid()
        return pwd.getpwnam(self.user).pw_gid

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the server log, or a note when there is none."""
        if self.workdir is None or not self.log_file.is_file():
            return "(no server log)"
        text = self.log_file.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def _fail(self, step: str, result: subprocess.CompletedProcess[str]) -> RuntimeError:
        """A RuntimeError describing a failed command, with the tail of the server log."""
        output = (result.stdout + result.stderr).strip()
        return RuntimeError(
            f"PostgreSQL {step} failed (exit {result.returncode}): {' '.join(result.args)}\n"
            f"{output}\n--- tail of {self.log_file if self.workdir else 'server log'} ---\n"
            f"{self.log_tail()}"
        )

    # -- lifecycle --------------------------------------------------------------

    def start(self) -> PostgresServer:
        """Create the cluster, start the server and create ``leukotrack_test``.

        Returns
        -------
        PostgresServer
            ``self``, started.

        Raises
        ------
        RuntimeError
            When a step fails; the message holds the command output and the tail of
            the server log. Call :meth:`stop` (or leave the ``with`` block) to clean up.
        """
        if self._started:
            return self
        self.workdir = self._make_workdir()
        atexit.register(self.stop)
        initdb = self._run(
            [
                self.bin_dir / "initdb",
                "-D",
                self.data_dir,
                "-A",
                "trust",
                "-U",
                SUPERUSER,
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            as_server_user=True,
        )
        if initdb.returncode != 0:
            raise self._fail("initdb", initdb)
        self._started = True  # from here on stop() must try pg_ctl stop
        for attempt in range(3):
            self.port = free_port()
            settings = [
                f"-p {self.port}",
                f"-k {shlex.quote(str(self.socket_dir))}",
                "-h 127.0.0.1",
                "-c fsync=off",
                "-c full_page_writes=off",
                "-c synchronous_commit=off",
                *(f"-c {shlex.quote(option)}" for option in self.options),
            ]
            started = self._run(
                [
                    self.bin_dir / "pg_ctl",
                    "-w",
                    "-t",
                    "60",
                    "-D",
                    self.data_dir,
                    "-o",
                    " ".join(settings),
                    "-l",
                    self.log_file,
                    "start",
                ],
                as_server_user=True,
            )
            if started.returncode == 0:
                break
            # another process took the port between free_port() and the bind: retry
            if attempt == 2 or "could not bind" not in self.log_tail():
                raise self._fail("pg_ctl start", started)
        self._createdb(TEST_DATABASE)
        return self

    def _createdb(self, name: str) -> None:
        """Create database ``name`` with ``createdb`` over TCP."""
        result = self._run(
            [
                self.bin_dir / "createdb",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                SUPERUSER,
                name,
            ],
            as_server_user=False,
        )
        if result.returncode != 0:
            raise self._fail(f"createdb {name}", result)

    def new_database(self, name: str) -> str:
        """Create another, empty database on this server.

        Parameters
        ----------
        name : str
            Lower-case letters, digits and underscores, not starting with a digit.

        Returns
        -------
        str
            The SQLAlchemy URL of the new database.
        """
        if not _DATABASE_NAME.fullmatch(name):
            raise ValueError(f"invalid database name {name!r}: use [a-z_][a-z0-9_]*")
        if not self._started or self.port is None:
            raise RuntimeError("the PostgreSQL server has not been started")
        self._createdb(name)
        return self.database_url(name)

    def _postmaster_pid(self) -> int | None:
        """The postmaster's pid from ``postmaster.pid``, if the file is there."""
        pid_file = self.data_dir / "postmaster.pid"
        try:
            first_line = pid_file.read_text(encoding="ascii").splitlines()[0]
            return int(first_line.strip())
        except (OSError, IndexError, ValueError):
            return None

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove the temporary directory.

        Safe to call more than once and after a failed :meth:`start`. When ``pg_ctl
        stop`` fails, the postmaster named in ``postmaster.pid`` is sent SIGQUIT
        (immediate shutdown) and, failing that, SIGKILL.
        """
        atexit.unregister(self.stop)
        workdir = self.workdir
        if workdir is None:
            return
        try:
            if self._started and (self.data_dir / "postmaster.pid").exists():
                stopped = self._run(
                    [self.bin_dir / "pg_ctl", "-D", self.data_dir, "-m", "fast", "-w", "stop"],
                    as_server_user=True,
                )
                if stopped.returncode != 0:
                    self._kill_postmaster()
        finally:
            self._started = False
            self.port = None
            self.workdir = None
            shutil.rmtree(workdir, ignore_errors=True)

    def _kill_postmaster(self) -> None:
        """Last resort when ``pg_ctl stop`` failed: signal the postmaster directly."""
        pid = self._postmaster_pid()
        if pid is None:
            return
        for sig in (signal.SIGQUIT, signal.SIGKILL):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    return
                time.sleep(0.1)

    def __enter__(self) -> PostgresServer:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"port {self.port}" if self._started else "stopped"
        return f"PostgresServer({self.bin_dir}, {state}, workdir={self.workdir})"


def require_pg_bin() -> Path:
    """The PostgreSQL bin directory for a test; skip without it, or fail when the environment sets
    LEUKOTRACK_REQUIRE_POSTGRES=1 (CI does, so the PostgreSQL tests never skip there)."""
    import pytest

    bin_dir = find_pg_bin()
    if bin_dir is None:
        message = (
            "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin "
            "(apt-get install postgresql-15, or set LEUKOTRACK_PG_BIN)"
        )
        if os.environ.get("LEUKOTRACK_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"LEUKOTRACK_REQUIRE_POSTGRES=1 but {message}", pytrace=False)
        pytest.skip(message)
    return bin_dir
