# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Private database servers for the integration tests: PostgreSQL, Redis, MariaDB.

Each server gets a temp dir (data, sockets, logs), listens on 127.0.0.1 and ::1 on one TCP
port, and is stopped and removed by stop(), by the context manager, or at exit. The Debian
system services are never used or touched. postgres and mariadbd refuse to run as root and
run as the package users 'postgres' and 'mysql'; redis-server runs as the caller.

    with Postgres() as pg:          # started, ready on both addresses
        connect(pg.address4)        # "127.0.0.1:PORT", pg.address6 is "[::1]:PORT"

    db = MariaDB()
    port = db.reserve_port()        # a free port, nothing listening yet
    ...                             # a client that tries the port before the DB is up
    db.start()                      # comes up late on that port
    db.stop(); db.start()           # restart on the same port

Every server process runs in its own session (process group); stop() signals the group,
SIGKILLs it after a grace period and also kills any member left once the leader has exited.
"""
import atexit
import os
import pwd
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time

PG_BIN = "/usr/lib/postgresql/15/bin"
REDIS_SERVER = "/usr/bin/redis-server"
MARIADBD = "/usr/sbin/mariadbd"
MARIADB_INSTALL_DB = "/usr/bin/mariadb-install-db"

_live = set()          # started (or half-started) servers, stopped at exit
_templates = {}        # class name -> initialised data dir, copied for each start
_lock = threading.Lock()


def _family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _fmt(host, port):
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def free_port(hosts=("127.0.0.1", "::1"), tries=50):
    """A TCP port that is free on every host right now (bound to port 0, then closed)."""
    for _ in range(tries):
        socks = []
        try:
            s = socket.socket(_family(hosts[0]), socket.SOCK_STREAM)
            socks.append(s)
            s.bind((hosts[0], 0))
            port = s.getsockname()[1]
            for h in hosts[1:]:
                t = socket.socket(_family(h), socket.SOCK_STREAM)
                socks.append(t)
                if _family(h) == socket.AF_INET6:
                    t.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                t.bind((h, port))
            return port
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no TCP port free on all of {hosts}")


def _proc_table():
    """pid -> (ppid, pgrp, starttime) for every live process (zombies left out: they are
    dead, only not reaped yet)."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 19 and fields[0] not in ("Z", "X"):
            table[int(name)] = (int(fields[1]), int(fields[2]), int(fields[19]))
    return table


def _tree(root, table=None):
    """{pid: starttime} of root, its descendants and its process group: postgres children
    call setsid(), so the group alone does not hold them."""
    table = _proc_table() if table is None else table
    found = {pid: t[2] for pid, t in table.items() if pid == root or t[1] == root}
    children = {}
    for pid, t in table.items():
        children.setdefault(t[0], []).append(pid)
    todo = list(found)
    while todo:
        for c in children.get(todo.pop(), ()):
            if c not in found:
                found[c] = table[c][2]
                todo.append(c)
    return found


def _killpg(pgid, sig):
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _terminate(proc, sig, grace):
    """Stop proc (a session leader) with sig, SIGKILL after grace seconds, and make sure
    that none of its descendants or process group members survive it."""
    seen = _tree(proc.pid) if proc.poll() is None else {}
    if proc.poll() is None:
        _killpg(proc.pid, sig)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _killpg(proc.pid, signal.SIGSTOP)   # no more forks while we look
            seen.update(_tree(proc.pid))
            _killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    # The leader is reaped and its pid may be reused, but not as a group id while members
    # of its group are left: those are still ours. From here on only known processes
    # (pid and start time) and their descendants are killed.
    table = _proc_table()
    for pid, t in table.items():
        if t[1] == proc.pid and pid != proc.pid:
            seen.update(_tree(pid, table))
    seen.pop(proc.pid, None)
    left = {}
    for _ in range(250):
        table = _proc_table()
        left = {p: st for p, st in seen.items() if p in table and table[p][2] == st}
        for pid in list(left):
            left.update(_tree(pid, table))
        if not left:
            return
        seen.update(left)
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.02)
    raise RuntimeError(f"processes {sorted(left)} survived SIGKILL")


def _tail(path, lines=40):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def recv_exact(sock, n):
    """Up to n bytes: fewer only if the peer closed the connection."""
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _chown_tree(path, uid, gid):
    os.chown(path, uid, gid)
    for top, dirs, files in os.walk(path):
        for n in dirs + files:
            os.lchown(os.path.join(top, n), uid, gid)


class DbServer:
    kind = None
    user = None             # unprivileged user to run as, None: the caller
    stop_signal = signal.SIGTERM
    grace = 5.0             # seconds between stop_signal and SIGKILL
    ready_timeout = 1.0     # per probe connection

    def __init__(self, host4="127.0.0.1", host6="::1", port=None, cgroup=None):
        """port: a fixed port instead of a free one; cgroup: a cgroup2 directory that the
        server (and its init tool) is placed in before exec."""
        self.host4, self.host6 = host4, host6
        self.port = port
        self.cgroup = cgroup
        self.dir = None
        self.proc = None
        self.last_log = ""   # the server log as it was at the last stop()

    # ---- public ----
    @property
    def address4(self):
        return _fmt(self.host4, self.port)

    @property
    def address6(self):
        return _fmt(self.host6, self.port)

    @property
    def hosts(self):
        return (self.host4, self.host6)

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def reserve_port(self, port=None):
        """Pick the port (free on both addresses) without starting; start() will use it."""
        if port is not None:
            self.port = port
        elif self.port is None:
            self.port = free_port(self.hosts)
        return self.port

    def start(self, timeout=30):
        if self.proc is not None:
            raise RuntimeError(f"{self.kind} already started on port {self.port}")
        deadline = time.monotonic() + timeout
        self.reserve_port()
        with _lock:
            _live.add(self)
        try:
            self.dir = tempfile.mkdtemp(prefix=f"caelum-{self.kind}-")
            os.chmod(self.dir, 0o755)
            if self.user:
                pw = pwd.getpwnam(self.user)
                os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self._prepare(deadline)
            out = open(self.stdout_path, "ab")
            try:
                self.proc = self._popen(self._argv(), stdout=out, stderr=subprocess.STDOUT)
            finally:
                out.close()
            self._wait_ready(deadline)
        except BaseException as e:
            log = self.log()
            self.stop()
            if isinstance(e, Exception):
                raise RuntimeError(f"{self.kind} on port {self.port} did not start: {e}\n"
                                   f"--- log tail ---\n{log}") from e
            raise
        return self

    def stop(self):
        """Stop the server (stop_signal, SIGKILL after grace) and remove its temp dir."""
        proc, self.proc = self.proc, None
        if proc is not None:
            _terminate(proc, self.stop_signal, self.grace)
        if self.dir is not None:
            self._after_exit()
            self.last_log = self.log()
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
        with _lock:
            _live.discard(self)

    def pids(self):
        """Processes of the running server: it, its descendants and its process group."""
        return sorted(_tree(self.proc.pid)) if self.proc is not None else []

    def log(self, lines=40):
        if self.dir is None:
            return self.last_log
        return "".join(_tail(p, lines) for p in self.log_paths)

    def probe(self, host, timeout=None):
        """True if the server answers its protocol on host:port."""
        try:
            with socket.create_connection((host, self.port),
                                          timeout=timeout or self.ready_timeout) as s:
                return self._probe(s)
        except OSError:
            return False

    def __enter__(self):
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        return f"<{type(self).__name__} port={self.port} running={self.running}>"

    # ---- for subclasses ----
    @property
    def stdout_path(self):
        return os.path.join(self.dir, "server.out")

    @property
    def log_paths(self):
        return [self.stdout_path]

    def _prepare(self, deadline):
        pass

    def _after_exit(self):
        """The server is gone, its dir not yet removed: undo what it left outside."""

    def _argv(self):
        raise NotImplementedError

    def _probe(self, sock):
        raise NotImplementedError

    # ---- helpers ----
    def _preexec(self, user):
        uid = gid = None
        if user:
            pw = pwd.getpwnam(user)
            uid, gid = pw.pw_uid, pw.pw_gid
        cgroup = self.cgroup

        def fn():
            if cgroup:
                with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
                    f.write(str(os.getpid()))
            if uid is not None:
                os.setgroups([])
                os.setgid(gid)
                os.setuid(uid)
        return fn

    def _popen(self, argv, user="default", **kw):
        user = self.user if user == "default" else user
        env = dict(os.environ)
        if user:
            env.update(HOME=self.dir, USER=user, LOGNAME=user)
        return subprocess.Popen(argv, cwd=self.dir, env=env, start_new_session=True,
                                preexec_fn=self._preexec(user), stdin=subprocess.DEVNULL, **kw)

    def _run(self, argv, deadline, log_path, user="default"):
        """Run an init tool to completion (its whole process group killed on timeout)."""
        with open(log_path, "ab") as out:
            p = self._popen(argv, user=user, stdout=out, stderr=subprocess.STDOUT)
        try:
            rc = p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except BaseException:
            _terminate(p, signal.SIGKILL, 0)
            raise RuntimeError(f"{argv[0]} did not finish in time:\n{_tail(log_path)}")
        _terminate(p, signal.SIGKILL, 0)  # anything it left behind
        if rc != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {rc}:\n{_tail(log_path)}")

    def _from_template(self, dest, deadline, init):
        """Copy an initialised data dir made once per test run by init(dir, deadline)."""
        pw = pwd.getpwnam(self.user)
        name = type(self).__name__
        with _lock:
            tmpl = _templates.get(name)
            if tmpl is None:
                top = tempfile.mkdtemp(prefix=f"caelum-{self.kind}-template-")
                try:
                    os.chmod(top, 0o755)
                    os.chown(top, pw.pw_uid, pw.pw_gid)
                    init(top, deadline)
                except BaseException:
                    shutil.rmtree(top, ignore_errors=True)
                    raise
                tmpl = _templates[name] = top
        shutil.copytree(os.path.join(tmpl, "data"), dest, symlinks=True)
        _chown_tree(dest, pw.pw_uid, pw.pw_gid)

    def _wait_ready(self, deadline):
        pending = list(self.hosts)
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}")
            pending = [h for h in pending if not self.probe(h)]
            if not pending:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"not ready on {', '.join(_fmt(h, self.port) for h in pending)}"
                                   " before the deadline")
            time.sleep(0.05)


class Postgres(DbServer):
    """PostgreSQL 15, trust authentication, superuser 'postgres', database 'postgres'."""
    kind = "postgresql"
    user = "postgres"
    stop_signal = signal.SIGINT   # fast shutdown; SIGTERM (smart) waits for clients to leave
    db_user = "postgres"

    @property
    def data(self):
        return os.path.join(self.dir, "data")

    def _prepare(self, deadline):
        def init(top, deadline):
            self._run([os.path.join(PG_BIN, "initdb"), "-D", os.path.join(top, "data"),
                       "-U", self.db_user, "--auth=trust", "--no-sync", "--no-locale",
                       "-E", "UTF8"], deadline, os.path.join(top, "initdb.log"))
        self._from_template(self.data, deadline, init)

    def _after_exit(self):
        # A postmaster that was SIGKILLed leaves its postmaster.pid and a small SysV shared
        # memory segment (line 7 of postmaster.pid: key and id); a clean shutdown neither.
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as f:
                lines = f.read().splitlines()
            shmid = int(lines[6].split()[1])
        except (OSError, IndexError, ValueError):
            return
        subprocess.run(["ipcrm", "-m", str(shmid)], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)

    def _argv(self):
        return [os.path.join(PG_BIN, "postgres"), "-D", self.data, "-p", str(self.port),
                "-k", self.dir, "-c", f"listen_addresses={self.host4},{self.host6}",
                "-c", "shared_buffers=16MB", "-c", "max_connections=20", "-c", "fsync=off",
                "-c", "full_page_writes=off", "-c", "synchronous_commit=off"]

    def _probe(self, s):
        # A StartupMessage: 'R' + AuthenticationOk once the server accepts sessions
        # ('E' "the database system is starting up" before that).
        body = struct.pack("!i", 196608) + (f"user\0{self.db_user}\0database\0postgres\0\0"
                                            .encode())
        s.sendall(struct.pack("!i", len(body) + 4) + body)
        head = recv_exact(s, 9)
        ok = head[:1] == b"R" and head[5:9] == b"\0\0\0\0"
        try:
            s.sendall(b"X" + struct.pack("!i", 4))
        except OSError:
            pass
        return ok


class Redis(DbServer):
    kind = "redis"

    def _argv(self):
        return [REDIS_SERVER, "--port", str(self.port), "--bind", f"{self.host4} {self.host6}",
                "--save", "", "--appendonly", "no", "--dir", self.dir, "--daemonize", "no",
                "--logfile", "", "--pidfile", os.path.join(self.dir, "redis.pid")]

    def _probe(self, s):
        s.sendall(b"PING\r\n")
        return recv_exact(s, 7) == b"+PONG\r\n"


class MariaDB(DbServer):
    """MariaDB 10.11, root@localhost without a password (grant tables kept)."""
    kind = "mysql"
    user = "mysql"
    SIZES = ["--innodb-buffer-pool-size=32M", "--innodb-log-file-size=8M"]

    @property
    def data(self):
        return os.path.join(self.dir, "data")

    @property
    def socket_path(self):
        return os.path.join(self.dir, "mysqld.sock")

    @property
    def log_paths(self):
        return [os.path.join(self.dir, "error.log"), self.stdout_path]

    def _prepare(self, deadline):
        def init(top, deadline):
            # Runs as root: the script chowns to --user and runs mariadbd --bootstrap as it.
            self._run([MARIADB_INSTALL_DB, "--no-defaults", "--user=mysql",
                       f"--datadir={os.path.join(top, 'data')}",
                       "--auth-root-authentication-method=normal", "--skip-test-db",
                       "--skip-name-resolve", *self.SIZES],
                      deadline, os.path.join(top, "install-db.log"), user=None)
        self._from_template(self.data, deadline, init)

    def _argv(self):
        return [MARIADBD, "--no-defaults", f"--datadir={self.data}", f"--port={self.port}",
                f"--bind-address={self.host4},{self.host6}", f"--socket={self.socket_path}",
                f"--pid-file={os.path.join(self.dir, 'mysqld.pid')}",
                f"--log-error={os.path.join(self.dir, 'error.log')}", f"--tmpdir={self.dir}",
                "--skip-name-resolve", "--skip-log-bin", "--performance-schema=OFF",
                "--innodb-flush-log-at-trx-commit=0", *self.SIZES]

    def _probe(self, s):
        # The server speaks first: 3-byte length, sequence id, protocol version 10.
        head = recv_exact(s, 5)
        return len(head) == 5 and head[4] == 0x0A


def _cleanup_all():
    with _lock:
        servers = list(_live)
    for s in servers:
        try:
            s.stop()
        except Exception:
            pass
    with _lock:
        tmpls = list(_templates.values())
        _templates.clear()
    for t in tmpls:
        shutil.rmtree(t, ignore_errors=True)


atexit.register(_cleanup_all)
