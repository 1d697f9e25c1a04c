"""All warehouse I/O goes through here: paths as URLs, atomic publish, manifests.

The warehouse root is a local path or a URL that pyarrow's filesystems understand (file://,
s3://...). Zones under it:

- `raw/<source>/files/<sha256>/<name>`: original bytes, content-addressed; `raw/<source>/manifest.parquet`
  records url, sha256, retrieved_at, vintage and status of every file ever seen;
- `clean/<dataset>/<k=v>/.../part-0.parquet` and `indicators/<dataset>/...`: Hive-partitioned,
  zstd Parquet, one file per partition; partition columns live in the path only (a column in
  both the path and the file breaks pyarrow/pandas readers);
- `quarantine/<dataset>/<file>.parquet`: rows that failed validation, with the reason.

Publishing stages every file under `_staging/` (outside any dataset, with a `.tmp` suffix, so
no `**/*.parquet` glob ever sees a half-written file) and then renames each into place; on a
local filesystem a rename is atomic, so a reader sees the old or the new partition, never a mix.

One writer at a time, all or nothing per run: see "one writer, one journal" below.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import hashlib
import io
import json
import logging
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from flows.errors import RarewatchError

log = logging.getLogger("rarewatch.warehouse")

INT_KEYS = ("year", "month")  # Hive keys read as integers; any other key is text
PARQUET_OPTIONS = {"compression": "zstd", "compression_level": 3, "write_statistics": True}


@dataclass(frozen=True)
class PartitionSpec:
    """How a dataset is laid out: its path under the root and its Hive partition keys."""

    path: str  # e.g. "clean/japan_customs_trade"
    partition_by: tuple[str, ...] = ()
    # zero-padding per key, so `month=07` sorts and reads as the issue's `month=MM`
    widths: tuple[tuple[str, int], ...] = ()

    def partition_path(self, key: Mapping[str, object]) -> str:
        widths = dict(self.widths)
        parts = []
        for name in self.partition_by:
            value = key[name]
            text = f"{int(value):0{widths[name]}d}" if name in widths else str(value)
            parts.append(f"{name}={text}")
        return "/".join([self.path, *parts])


# ---------------------------------------------------------------------------- one writer, one journal
#
# A run that rewrites the warehouse holds its writer lock (`_writer.lock` at the root: pid, host,
# start time, heartbeat) and publishes through one transaction: files are staged under
# `_staging/<tx>/<final path>.staged` (no `**/*.parquet` glob sees them), reads inside the run see
# the staged state (read-your-writes), and the commit writes a journal (`_publish.journal`: every staged
# file with its target, every deletion) before renaming anything and removes it last. A
# journal left by a run killed while committing is rolled forward by the next writer, or by any
# reader when no writer is alive. Raw bytes (`raw/<source>/files/`) and quarantine are evidence:
# written at once, never rolled back (content-addressed or named by their input, so harmless).

LOCK_FILE = "_writer.lock"
JOURNAL = "_publish.journal"  # one writer at a time: at most one journal
STAGING = "_staging"
DIRECT = ("raw/*/files/*", "raw/*/pages/*", "quarantine/*")  # evidence zones, outside transactions
HEARTBEAT_S = 20.0
STALE_AFTER_S = 120.0  # a lock from another host whose heartbeat is older than this is stale


def _direct(rel: str) -> bool:
    return any(fnmatch.fnmatchcase(rel, pattern) for pattern in DIRECT)


# this host, as direct staged files name their writer (no "-" in it: the name is split on it)
_WRITER_TAG = re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname())[:40] or "host"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


@dataclass
class _Held:
    token: str
    count: int
    info: dict
    stop: threading.Event
    thread: threading.Thread | None = None


_HELD: dict[str, _Held] = {}  # root URL -> the writer lock this process holds there
_TX: dict[str, "Transaction"] = {}  # root URL -> the transaction under way in this process
_GUARD = threading.RLock()


class Transaction:
    """What a run will publish, staged; committed at once through a journal (see above)."""

    def __init__(self, wh: "Warehouse", what: str):
        self.wh, self.what = wh, what
        self.id = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:12]}"
        self.staged: dict[str, str] = {}  # rel -> staged path (self.wh.fs)
        self.deleted: set[str] = set()
        self._log: list[tuple[str, str | None, bool]] = []  # (rel, previous staged, previously deleted)
        self._after: list[Callable[[], None]] = []  # what to record once rolled back (after_rollback)
        self._lock = threading.RLock()

    # -- recording
    def stage(self, rel: str, data: bytes) -> None:
        tmp = f"{STAGING}/{self.id}/{rel}.staged.{uuid.uuid4().hex[:8]}"  # relative to the root
        path = self.wh.path(tmp)
        with _writing(self.wh, path):
            self.wh.fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
            with self.wh.fs.open_output_stream(path) as f:
                f.write(data)
        with self._lock:
            self._log.append((rel, self.staged.get(rel), rel in self.deleted))
            self.staged[rel] = tmp
            self.deleted.discard(rel)

    def delete(self, rel: str) -> None:
        with self._lock:
            self._log.append((rel, self.staged.get(rel), rel in self.deleted))
            self.staged.pop(rel, None)
            self.deleted.add(rel)

    def mark(self) -> int:
        return len(self._log)

    def after_rollback(self, record: Callable[[], None]) -> None:
        """Run `record` once the innermost savepoint has been rolled back (its writes then join the
        enclosing transaction): how a refused file's manifest entry survives the refusal."""
        self._after.append(record)

    def rollback_to(self, mark: int) -> None:
        """Undo what was recorded since `mark`."""
        with self._lock:
            while len(self._log) > mark:
                rel, previous, was_deleted = self._log.pop()
                current = self.staged.pop(rel, None)
                if current is not None and current != previous:
                    self._remove(self.wh.path(current))
                if previous is not None:
                    self.staged[rel] = previous
                self.deleted.discard(rel)
                if was_deleted:
                    self.deleted.add(rel)

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A part of the run that fails alone: on an exception what it staged is dropped, then the
        exception goes on."""
        mark, n_after = self.mark(), len(self._after)
        try:
            yield
        except BaseException:
            self.rollback_to(mark)
            # recorded again after every enclosing rollback, and at last outside the transaction
            # if the whole run is dropped (records are idempotent)
            for fn in self._after[n_after:]:
                fn()
            raise

    # -- reading through
    def lookup(self, rel: str) -> str | None | bool:
        """The staged path of `rel`, False when deleted here, None when this transaction leaves it."""
        if rel in self.staged:
            return self.wh.path(self.staged[rel])
        if rel in self.deleted:
            return False
        return None

    # -- ending
    def commit(self) -> None:
        with self._lock:
            moves = [[self.staged[rel], rel] for rel in sorted(self.staged)]
            deletes = sorted(self.deleted)
        if not moves and not deletes:
            self.discard()
            return
        journal = json.dumps({"id": self.id, "what": self.what, "moves": moves, "deletes": deletes}, indent=0)
        self.wh._write_now(JOURNAL, journal.encode())  # the commit point: from here on it is rolled forward
        _apply(self.wh, moves, deletes)
        self.wh.fs.delete_file(self.wh.path(JOURNAL))
        self.discard()

    def discard(self) -> None:
        top = self.wh.path(STAGING, self.id)
        if self.wh.fs.get_file_info(top).type == pafs.FileType.Directory:
            self.wh.fs.delete_dir(top)

    def _remove(self, path: str) -> None:
        try:
            self.wh.fs.delete_file(path)
        except (FileNotFoundError, OSError):
            pass


def _apply(wh: "Warehouse", moves: list[list[str]], deletes: list[str]) -> None:
    """Renames and deletions of a journal (paths relative to the root); idempotent: a move whose
    staged file is gone was done."""
    for src, dst in moves:
        if wh._fs_exists(wh.path(src)):
            wh._commit(wh.path(src), wh.path(dst))
    for dst in deletes:
        if wh._fs_exists(wh.path(dst)):
            wh.fs.delete_file(wh.path(dst))


class WarehouseWriteError(RarewatchError):
    """The warehouse's storage refused a write (full disk, read-only, no permission): names the
    file and the cause. Nothing staged is published (the run's transaction is dropped)."""

    def __init__(self, root: str, path: str, error: OSError):
        cause = " ".join(str(error).split())
        for code, text in ((28, "no space left on the device"), (30, "the file system is read-only"),
                           (13, "permission denied")):
            if error.errno == code or f"errno {code}]" in cause:
                cause = text
        super().__init__(f"[warehouse] cannot write {path}: {cause}. Nothing of the run was published; free space or "
                         f"make {root} writable, or point RAREWATCH_WAREHOUSE elsewhere")


@contextmanager
def _writing(wh: "Warehouse", path: str) -> Iterator[None]:
    try:
        yield
    except OSError as e:
        raise WarehouseWriteError(wh.root_url, path, e) from None


class WarehouseLocked(RarewatchError):
    """Another live run holds the warehouse's writer lock for longer than this run may wait."""


class LockUnsupported(RarewatchError):
    """The warehouse's filesystem has no exclusive create, so no writer lock can be taken there."""


def _lock_info(what: str, token: str) -> dict:
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    return {"pid": os.getpid(), "host": socket.gethostname(), "started_at": now, "heartbeat": now,
            "what": what, "token": token}


def _holder_text(info: dict) -> str:
    return (f"pid {info.get('pid')} on {info.get('host')} since {info.get('started_at')} "
            f"({info.get('what') or 'a rarewatch run'})")


def _stale(info: dict, now: float, stale_after: float) -> bool:
    """A lock whose holder is dead: same host and no such process, or no heartbeat for `stale_after`."""
    if info.get("host") == socket.gethostname():
        try:
            return not _pid_alive(int(info.get("pid", -1)))
        except (TypeError, ValueError):
            return True
    try:
        beat = dt.datetime.fromisoformat(str(info.get("heartbeat"))).timestamp()
    except ValueError:
        return True
    return now - beat > stale_after


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Warehouse:
    """The warehouse at `root` (path or URL)."""

    def __init__(self, root: str):
        if "://" not in root:
            root = Path(root).expanduser().resolve().as_uri()
        # Options ride in the query (s3://bucket/path?endpoint_override=...&region=...): they reach
        # pyarrow, never the URLs rarewatch prints or records (they may hold credentials).
        location, _, self._options = root.partition("?")
        self.root_url = location.rstrip("/")
        self.fs, self.base = pafs.FileSystem.from_uri(root)
        self.base = self.base.rstrip("/")
        if self.root_url not in _HELD and self._fs_exists(self.path(JOURNAL)):
            self._recover_if_free()  # a run died while committing: finish its publish first

    # ---------------------------------------------------------------- paths
    def path(self, *parts: str) -> str:
        """Filesystem path (for self.fs) of a location under the root."""
        return "/".join([self.base, *[p.strip("/") for p in parts if p]])

    def url(self, *parts: str) -> str:
        """URL of a location under the root, for messages and manifests."""
        return "/".join([self.root_url, *[p.strip("/") for p in parts if p]])

    def _fs_exists(self, path: str) -> bool:
        return self.fs.get_file_info(path).type != pafs.FileType.NotFound

    def _tx(self) -> Transaction | None:
        return _TX.get(self.root_url)

    def current_transaction(self) -> Transaction | None:
        """The transaction under way in this process, if any."""
        return self._tx()

    def _read_path(self, rel: str) -> str:
        """Where `rel` is read from: the run's staged copy when its transaction wrote it."""
        tx = self._tx()
        hit = tx.lookup(rel) if tx is not None else None
        if hit is False:
            raise FileNotFoundError(f"{self.url(rel)} (deleted by the run under way)")
        return hit or self.path(rel)

    def exists(self, *parts: str) -> bool:
        rel = "/".join(p.strip("/") for p in parts if p)
        tx = self._tx()
        hit = tx.lookup(rel) if tx is not None else None
        if hit is not None:
            return hit is not False
        return self._fs_exists(self.path(rel))

    def list_files(self, *parts: str, suffix: str = "") -> list[str]:
        """Files under a location (recursive), as paths relative to the root, sorted; as the run
        under way will leave them (its staged files in, its deletions out)."""
        top = self.path(*parts)
        found: set[str] = set()
        if self.fs.get_file_info(top).type == pafs.FileType.Directory:
            prefix = self.base + "/"
            found = {i.path[len(prefix):] for i in self.fs.get_file_info(pafs.FileSelector(top, recursive=True))
                     if i.type == pafs.FileType.File and i.path.endswith(suffix)}
        tx = self._tx()
        if tx is not None:
            under = "/".join(p.strip("/") for p in parts if p) + "/"
            found = (found - tx.deleted) | {r for r in tx.staged if r.startswith(under) and r.endswith(suffix)}
        return sorted(found)

    def file_signature(self, files: Sequence[str]) -> tuple:
        """(path, size, mtime) of each file as it will be read: changes when any file does."""
        infos = self.fs.get_file_info([self._read_path(f) for f in files])
        return tuple((i.path, i.size, i.mtime_ns) for i in infos if i.type == pafs.FileType.File)

    # ---------------------------------------------------------------- bytes
    def read_bytes(self, *parts: str) -> bytes:
        with self.fs.open_input_stream(self._read_path("/".join(p.strip("/") for p in parts if p))) as f:
            return f.read()

    def _stage(self, data: bytes) -> str:
        staging = self.path(STAGING, "direct")  # written without the lock (evidence): swept by age
        # named by writer, so the next run can tell a dead writer's leftovers from live writes
        tmp = f"{staging}/{_WRITER_TAG}-{os.getpid()}-{uuid.uuid4().hex}.tmp"
        with _writing(self, tmp):
            self.fs.create_dir(staging, recursive=True)
            with self.fs.open_output_stream(tmp) as f:
                f.write(data)
        return tmp

    def _commit(self, tmp: str, final: str) -> None:
        parent = final.rsplit("/", 1)[0]
        with _writing(self, final):
            self.fs.create_dir(parent, recursive=True)
            self.fs.move(tmp, final)  # atomic rename on a local filesystem

    def _write_now(self, rel: str, data: bytes) -> None:
        """Staged, then renamed into place at once (no transaction)."""
        self._commit(self._stage(data), self.path(rel))

    def write_bytes_atomic(self, rel: str, data: bytes) -> str:
        """Write bytes to `rel` under the root: into the run's transaction when one is under way
        (published with everything else at its end), else staged and renamed into place under the
        writer lock. Evidence (raw bytes, quarantine) is written at once, without the lock."""
        tx = self._tx()
        if _direct(rel):
            self._write_now(rel, data)
        elif tx is not None:
            tx.stage(rel, data)
        else:
            with self.writer(f"write {rel}"):
                self._write_now(rel, data)
        return self.url(rel)

    # ---------------------------------------------------------------- writer lock and transactions
    @contextmanager
    def writer(self, what: str, *, timeout: float = 3600.0) -> Iterator[None]:
        """Hold the warehouse's writer lock (re-entrant within a process).

        Waits up to `timeout` seconds for a live holder (saying once who it is); takes over a stale
        lock (its process gone, or from another host with no heartbeat for STALE_AFTER_S) with a
        warning. Once held: journals left by a dead run are rolled forward and staged files of dead
        runs removed.
        """
        with _GUARD:
            held = _HELD.get(self.root_url)
            if held is not None:
                held.count += 1
        if held is not None:
            try:
                yield
            finally:
                with _GUARD:
                    held.count -= 1
            return
        token = uuid.uuid4().hex
        info = self._acquire(what, token, timeout)
        held = _Held(token, 1, info, threading.Event())
        with _GUARD:
            _HELD[self.root_url] = held
        try:
            self.recover()
            self._clear_staging()
            held.thread = threading.Thread(target=self._heartbeat, args=(held,), daemon=True,
                                           name="rarewatch-lock-heartbeat")
            held.thread.start()
            yield
        finally:
            with _GUARD:
                held.count -= 1
                if held.count == 0:
                    del _HELD[self.root_url]
            if held.count == 0:
                held.stop.set()
                self._release(token)

    def holder(self) -> dict | None:
        """Who holds the writer lock (pid, host, started_at, heartbeat, what), None when free."""
        try:
            return json.loads(self._fs_read(self.path(LOCK_FILE)))
        except FileNotFoundError:
            return None
        except ValueError:  # being written, or torn by a crash
            return {}

    def _fs_read(self, path: str) -> bytes:
        try:
            with self.fs.open_input_stream(path) as f:
                return f.read()
        except OSError as e:
            if not self._fs_exists(path):
                raise FileNotFoundError(path) from e
            raise

    def _acquire(self, what: str, token: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        told = False
        while True:
            info = _lock_info(what, token)
            if self._create_exclusive(LOCK_FILE, json.dumps(info).encode()):
                return info
            current = self.holder()
            if current is None:
                continue  # released meanwhile
            age = self._age(LOCK_FILE)
            if (current == {} and age > 10) or (current and _stale(current, time.time(), STALE_AFTER_S)):
                log.warning("%s: taking over the writer lock left by %s, which is no longer running",
                            self.root_url, _holder_text(current) if current else "a run that died while taking it")
                self._remove_lock_if(current)
                continue
            if time.monotonic() >= deadline:
                raise WarehouseLocked(
                    f"{self.url(LOCK_FILE)}: the warehouse is being written by {_holder_text(current or {})}; "
                    f"waited {timeout:g} s (RAREWATCH_LOCK_TIMEOUT). Runs write one at a time; if that process "
                    f"no longer exists, delete the lock file.")
            if not told:
                log.warning("%s: waiting for the writer lock held by %s", self.root_url, _holder_text(current or {}))
                told = True
            time.sleep(0.2)

    def _age(self, rel: str) -> float:
        info = self.fs.get_file_info(self.path(rel))
        return time.time() - info.mtime.timestamp() if info.mtime is not None else 0.0

    def _create_exclusive(self, rel: str, data: bytes) -> bool:
        """Create `rel` only if it does not exist (atomic); False when it does."""
        path = self.path(rel)
        if isinstance(self.fs, pafs.LocalFileSystem):
            with _writing(self, path):
                os.makedirs(os.path.dirname(path), exist_ok=True)
                try:
                    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                except FileExistsError:
                    return False
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
            return True
        if isinstance(self.fs, pafs.S3FileSystem):
            from botocore.exceptions import ClientError

            bucket, _, key = path.partition("/")
            try:
                self._s3().put_object(Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
            except ClientError as e:
                if e.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
                    return False
                raise
            return True
        raise LockUnsupported(f"{self.root_url}: {type(self.fs).__name__} offers no exclusive create, so rarewatch "
                              "cannot take a writer lock there; use a local folder or S3")

    def _s3(self):  # noqa: ANN202
        """A boto3 client for the warehouse's S3 endpoint (conditional writes, which pyarrow lacks)."""
        from urllib.parse import parse_qs

        import boto3

        opts = {k: v[-1] for k, v in parse_qs(self._options).items()}
        endpoint = opts.get("endpoint_override")
        if endpoint and "://" not in endpoint:
            endpoint = f"{opts.get('scheme', 'https')}://{endpoint}"
        return boto3.client("s3", endpoint_url=endpoint, region_name=opts.get("region"),
                            aws_access_key_id=opts.get("access_key"), aws_secret_access_key=opts.get("secret_key"))

    def _remove_lock_if(self, seen: dict) -> None:
        """Remove a stale lock, unless another run took it over since it was read."""
        path = self.path(LOCK_FILE)
        if isinstance(self.fs, pafs.LocalFileSystem):
            aside = f"{path}.stale-{uuid.uuid4().hex[:8]}"
            try:
                os.rename(path, aside)  # atomic: of two runs taking over, one moves it
            except FileNotFoundError:
                return
            try:
                moved = json.loads(Path(aside).read_bytes() or b"{}")
            except ValueError:
                moved = {}
            live = seen and moved.get("token") != seen.get("token") and not _stale(moved, time.time(), STALE_AFTER_S)
            if live and not os.path.exists(path):  # another run took it over meanwhile: put it back
                os.rename(aside, path)
            else:
                os.unlink(aside)
            return
        if self.holder() == seen:
            self.fs.delete_file(path)

    def _release(self, token: str) -> None:
        current = self.holder()
        if current and current.get("token") == token:
            self.fs.delete_file(self.path(LOCK_FILE))

    def _heartbeat(self, held: _Held) -> None:
        """Refresh the lock's heartbeat while it is held (what other hosts judge staleness by)."""
        while not held.stop.wait(HEARTBEAT_S):
            info = dict(held.info, heartbeat=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
            try:
                if (self.holder() or {}).get("token") == held.token:
                    self._write_now(LOCK_FILE, json.dumps(info).encode())
            except OSError as e:  # the next beat tries again
                log.warning("%s: writer lock heartbeat failed: %s", self.root_url, e)

    @contextmanager
    def transaction(self, what: str, *, lock_timeout: float = 3600.0) -> Iterator[Transaction]:
        """A run's publish, all or nothing: under the writer lock, everything written within is
        staged and read back as written, and published at the end through one journal; on an
        exception nothing of it is published. Nested: the outer transaction (a savepoint)."""
        outer = self._tx()
        if outer is not None:
            with outer.savepoint():
                yield outer
            return
        with self.writer(what, timeout=lock_timeout):
            tx = Transaction(self, what)
            with _GUARD:
                _TX[self.root_url] = tx
            try:
                yield tx
                with _GUARD:
                    del _TX[self.root_url]
                tx.commit()
            except BaseException:
                with _GUARD:
                    _TX.pop(self.root_url, None)
                tx.discard()
                for fn in tx._after:  # refusals are kept even when nothing else is
                    try:
                        fn()
                    except Exception as e:  # never hide the run's own error behind this one
                        log.warning("%s: could not record a refusal: %s", self.root_url, e)
                raise

    def recover(self) -> list[str]:
        """Roll forward the journals of runs that died while committing (the writer lock is held)."""
        path = self.path(JOURNAL)
        try:
            doc = json.loads(self._fs_read(path))
        except FileNotFoundError:
            return []
        except ValueError:  # cannot be torn (written by rename), but never trust it then
            log.warning("%s: an unreadable publish journal was set aside", self.root_url)
            self.fs.move(path, f"{path}.unreadable-{uuid.uuid4().hex[:8]}")
            return []
        _apply(self, doc.get("moves", []), doc.get("deletes", []))
        self.fs.delete_file(path)
        log.warning("%s: finished publishing %d file(s) of an interrupted run (%s)", self.root_url,
                    len(doc.get("moves", [])) + len(doc.get("deletes", [])), doc.get("what", "?"))
        return [str(doc.get("id", ""))]

    def _recover_if_free(self) -> None:
        """A reader found a journal: roll it forward unless a live writer is committing it."""
        try:
            with self.writer("roll forward an interrupted publish", timeout=0):
                pass
        except (WarehouseLocked, LockUnsupported, OSError) as e:
            log.debug("%s: journal left for its writer: %s", self.root_url, e)

    def _clear_staging(self) -> None:
        """Staged files of runs that are dead (the lock is ours, so no other run is writing)."""
        top = self.path(STAGING)
        if self.fs.get_file_info(top).type != pafs.FileType.Directory:
            return
        cutoff = time.time() - 3600  # direct writes (raw bytes, quarantine) may be under way in workers
        for info in self.fs.get_file_info(pafs.FileSelector(top)):
            if info.base_name == "direct" and info.type == pafs.FileType.Directory:
                for f in self.fs.get_file_info(pafs.FileSelector(info.path)):
                    if f.type != pafs.FileType.File:
                        continue
                    # this host's dead writers at once; others' (or unnamed) after an hour
                    tag, _, rest = f.base_name.partition("-")
                    pid = rest.partition("-")[0]
                    dead = tag == _WRITER_TAG and pid.isdigit() and not _pid_alive(int(pid))
                    if dead or (f.mtime is not None and f.mtime.timestamp() < cutoff):
                        self.fs.delete_file(f.path)
            elif info.type == pafs.FileType.Directory:
                self.fs.delete_dir(info.path)
            else:
                self.fs.delete_file(info.path)

    # ---------------------------------------------------------------- parquet
    @staticmethod
    def parquet_bytes(frame: pl.DataFrame, metadata: Mapping[str, str] | None = None,
                      descriptions: Mapping[str, str] | None = None) -> bytes:
        """Deterministic zstd Parquet: the same frame always gives the same bytes. `descriptions`
        (the data dictionary's) go into each field's metadata under `description`."""
        table = frame.to_arrow()
        if descriptions:
            fields = [f.with_metadata({**(f.metadata or {}), b"description": descriptions[f.name].encode()})
                      if f.name in descriptions else f for f in table.schema]
            table = table.cast(pa.schema(fields, metadata=table.schema.metadata))
        if metadata:
            meta = dict(table.schema.metadata or {})
            meta.update({k.encode(): v.encode() for k, v in metadata.items()})
            table = table.replace_schema_metadata(meta)
        buf = io.BytesIO()
        # dictionary pages for text columns only: numbers rarely repeat, and encoding them costs
        # ~40 % of the writing time of a million-row indicator
        text = [f.name for f in table.schema if str(f.type) in ("string", "large_string", "string_view")]
        pq.write_table(table, buf, use_dictionary=text, **PARQUET_OPTIONS)
        return buf.getvalue()

    def parquet_footer(self, rel: str) -> tuple[dict[str, str], int] | None:
        """(key-value metadata, row count) of a Parquet file, from its footer alone; None when absent."""
        if not self.exists(rel):
            return None
        with self.fs.open_input_file(self._read_path(rel)) as f:
            meta = pq.read_metadata(f)
        kv = {k.decode(): v.decode() for k, v in (meta.metadata or {}).items() if not k.startswith(b"ARROW:")}
        return kv, meta.num_rows

    def read_parquet(self, rel: str) -> pl.DataFrame:
        with self.fs.open_input_file(self._read_path(rel)) as f:
            return pl.from_arrow(pq.read_table(f))  # type: ignore[return-value]

    def publish(self, files: Mapping[str, pl.DataFrame], *, delete: Sequence[str] = (),
                metadata: Mapping[str, str] | None = None) -> list[str]:
        """Publish several Parquet files at once.

        Within a run's transaction they join it (published with everything else when the run
        ends well, never otherwise). Outside one, under the writer lock, as a transaction of their
        own: nothing reaches its final path until every file has been serialised and staged.
        `delete` lists files to remove (partitions that no longer exist).
        """
        if self._tx() is None:
            with self.transaction(f"publish {len(files)} file(s)"):
                return self.publish(files, delete=delete, metadata=metadata)
        tx = self._tx()
        assert tx is not None
        from flows.dictionary import field_descriptions

        for rel, df in files.items():
            tx.stage(rel, self.parquet_bytes(df, metadata, field_descriptions(rel)))
        for rel in delete:
            if rel not in files and self.exists(rel):
                tx.delete(rel)
        return [self.url(rel) for rel in files]

    # ---------------------------------------------------------------- partitioned datasets
    def read_dataset(self, spec: PartitionSpec, where: Mapping[str, object] | None = None) -> pl.DataFrame | None:
        """All partitions of a dataset (or those matching `where`), partition keys as columns."""
        frames = []
        if where and set(where) == set(spec.partition_by):  # one partition: read its path, list nothing
            rel = spec.partition_path(where) + "/part-0.parquet"
            files = [rel] if self.exists(rel) else []
        else:
            files = self.list_files(spec.path, suffix=".parquet")
        for rel in files:
            keys = _hive_keys(rel[len(spec.path) + 1:])
            if where and any(str(_typed(keys.get(k, ""))) != str(v) for k, v in where.items()):
                continue
            frames.append(self.read_parquet(rel).with_columns(
                pl.lit(value := _typed(keys[k]), dtype=pl.Int64 if isinstance(value, int) else pl.String).alias(k)
                for k in spec.partition_by))
        if not frames:
            return None
        return pl.concat(frames, how="vertical_relaxed")

    def scan_dataset(self, spec: PartitionSpec, columns: Sequence[str] | None = None, *,
                     files: Sequence[str] | None = None) -> pl.LazyFrame | None:
        """A lazy scan of a dataset (Hive partition keys as columns, typed), for projection and
        predicate pushdown: only the columns and row groups asked for are read. Any filesystem
        pyarrow knows (through `pyarrow.dataset`); None when the dataset has no file. `files`:
        its files when the caller has just listed them (`partition_files`)."""
        import pyarrow.dataset as ds

        files = self.partition_files(spec) if files is None else files
        if not files:
            return None
        if isinstance(self.fs, pafs.LocalFileSystem):  # polars' own reader: streaming, no Arrow copy
            lf = pl.scan_parquet([self._read_path(f) for f in files], hive_partitioning=bool(spec.partition_by),
                                 hive_schema={k: pl.Int64 if k in INT_KEYS else pl.String for k in spec.partition_by}
                                 or None)
            return lf.select(list(columns)) if columns is not None else lf
        keys = pa.schema([(k, pa.int64() if k in INT_KEYS else pa.string()) for k in spec.partition_by])
        paths = [self._read_path(f) for f in files]
        if spec.partition_by:  # partition values from the final paths: staged copies live elsewhere
            fmt = ds.ParquetFileFormat()
            physical = fmt.inspect(paths[0], filesystem=self.fs)
            exprs = []
            for f in files:
                found = _hive_keys(f[len(spec.path) + 1:])
                expr = None
                for k in spec.partition_by:
                    term = ds.field(k) == pa.scalar(_typed(found[k]) if k in INT_KEYS else found[k],
                                                    type=keys.field(k).type)
                    expr = term if expr is None else expr & term
                exprs.append(expr)
            dataset = ds.FileSystemDataset.from_paths(paths, schema=pa.unify_schemas([physical, keys]), format=fmt,
                                                      filesystem=self.fs, partitions=exprs)
        else:
            dataset = ds.dataset(paths, filesystem=self.fs, format="parquet")
        lf = pl.scan_pyarrow_dataset(dataset)
        return lf.select(list(columns)) if columns is not None else lf

    def partition_files(self, spec: PartitionSpec) -> list[str]:
        return self.list_files(spec.path, suffix=".parquet")

    def write_partitions(self, spec: PartitionSpec, frame: pl.DataFrame, *, replace_all: bool = False,
                         sort_by: Sequence[str] = (), metadata: Mapping[str, str] | None = None) -> list[str]:
        """Write `frame` as one file per partition (partition columns dropped from the files).

        Partitions present in `frame` are replaced whole; with `replace_all`, partitions absent
        from `frame` are deleted (a dataset recomputed from scratch).
        """
        files: dict[str, pl.DataFrame] = {}
        if spec.partition_by:
            for key, part in frame.partition_by(list(spec.partition_by), as_dict=True, maintain_order=True).items():
                rel = spec.partition_path(dict(zip(spec.partition_by, key))) + "/part-0.parquet"
                body = part.drop(list(spec.partition_by))
                files[rel] = body.sort(list(sort_by)) if sort_by else body
        else:
            files[f"{spec.path}/part-0.parquet"] = frame.sort(list(sort_by)) if sort_by else frame
        delete = [f for f in self.partition_files(spec) if f not in files] if replace_all else []
        return self.publish(files, delete=delete, metadata=metadata)

    # ---------------------------------------------------------------- raw zone
    def put_raw(self, source: str, name: str, data: bytes) -> tuple[str, str]:
        """Keep original bytes, content-addressed; idempotent. Returns (sha256, url)."""
        digest = sha256_bytes(data)
        rel = f"raw/{source}/files/{digest}/{_safe_name(name)}"
        if not self.exists(rel):
            self.write_bytes_atomic(rel, data)
        return digest, self.url(rel)

    def raw_manifest(self, source: str) -> pl.DataFrame | None:
        rel = f"raw/{source}/manifest.parquet"
        return self.read_parquet(rel) if self.exists(rel) else None

    def record_raw(self, source: str, entries: pl.DataFrame, key: Sequence[str] = ("sha256", "url")) -> None:
        """Add entries to a source's raw manifest. An entry already there takes the latest attempt's
        fields but keeps its first `retrieved_at`, so re-running changes nothing."""
        old = self.raw_manifest(source)
        if old is not None:
            first = old.select(*key, pl.col("retrieved_at").alias("_first"))
            entries = entries.join(first, on=list(key), how="left").with_columns(
                pl.coalesce("_first", "retrieved_at").alias("retrieved_at")).drop("_first")
            kept = old.join(entries.select(list(key)), on=list(key), how="anti")
            entries = pl.concat([kept, entries.select(kept.columns) if set(kept.columns) == set(entries.columns)
                                 else entries], how="diagonal_relaxed")
        self.publish({f"raw/{source}/manifest.parquet": entries.sort(list(key))})

    # ---------------------------------------------------------------- quarantine
    def keep_page(self, source: str, name: str, data: bytes) -> str:
        """Keep a page whose shape was not recognised, for inspection: `quarantine/pages/<source>/<name>`."""
        return self.write_bytes_atomic(f"quarantine/pages/{source}/{_safe_name(name)}", data)

    def quarantine(self, dataset: str, name: str, frame: pl.DataFrame) -> str:
        """Keep rejected rows with their reasons; one file per rejected input (idempotent). Kept
        at once, whatever becomes of the run: the reason a file was refused must survive it."""
        rel = f"quarantine/{dataset}/{_safe_name(name)}.parquet"
        self._write_now(rel, self.parquet_bytes(frame))
        return self.url(rel)


def _safe_name(name: str) -> str:
    base = os.path.basename(name.replace("\\", "/")) or "file"
    return "".join(c if c.isalnum() or c in "-_.=" else "_" for c in base)


def _hive_keys(rel: str) -> dict[str, str]:
    return dict(p.split("=", 1) for p in rel.split("/")[:-1] if "=" in p)


def _typed(text: str) -> int | str:
    return int(text) if text.isdigit() else text


def join_root(root: str, *parts: str) -> str:
    """A location under a warehouse root given as a path or URL, keeping the URL's options."""
    location, sep, options = root.partition("?")
    return "/".join([location.rstrip("/"), *[p.strip("/") for p in parts]]) + (sep + options if sep else "")


__all__ = ["PartitionSpec", "Warehouse", "join_root", "sha256_bytes"]
