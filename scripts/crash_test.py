"""Crash test of Custos (run through scripts/crash-test; Debian's python3, stdlib only).

Initialises a temporary data directory and a tenant, then for each round: starts `custos serve`,
runs K writers doing PUTs of random content (random sizes, 0-8 KiB) to new keys, and sometimes
overwrites one of the writer's earlier keys, records each acknowledged (2xx) write's sha256,
SIGKILLs the server after a random 0.2-1.5 s, restarts it and checks that:
  - every acknowledged write of the round reads back with exactly those bytes (or, for a key
    overwritten since, with the bytes of a later write that was in flight at the kill);
  - a write that was in flight at the kill reads back either as before it or as sent, nothing else;
  - a sample of the objects acknowledged in earlier rounds still reads back (all of them after
    the last round);
  - every acknowledged write has its data.write record in the tenant's access log (the ledger
    records an access durably before it is performed: fail closed);
  - `custos ledger verify` passes against the restarted server, and the last checkpoint served
    before the kill is consistent with the log after it (given to verify as its saved state): no
    checkpoint commits to entries that were not stored, and no answered entry is lost.
Prints a line per round and `crash-test: N rounds, A acknowledged writes, L lost, C corrupt,
U unlogged, H unanswered, V ledger verify failures`; exits 1 on any loss, corruption, unlogged
write, failed ledger verification or request the
restarted server left unanswered (its thread stacks are saved with gdb, and the data directory is
kept), 2 on a setup failure.
"""

import argparse
import hashlib
import http.client
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

STARTUP_TIMEOUT = 15.0
HTTP_TIMEOUT = 10.0
VERIFY_THREADS = 8
EARLIER_SAMPLE = 300  # earlier-round objects re-read after each round (all after the last)


class SetupError(Exception):
    pass


class Unanswered(Exception):
    """The restarted server did not answer (in time): a hang or a crash after recovery."""


class Server:
    """One `custos serve` process on a data directory."""

    def __init__(self, binary, data_dir, log_dir, n):
        self.stdout_path = os.path.join(log_dir, f"serve-{n}.stdout")
        self.stderr_path = os.path.join(log_dir, f"serve-{n}.stderr")
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                [binary, "serve", "--data-dir", data_dir, "--listen", "127.0.0.1:0",
                 "--log-level", "warn"],
                stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        self.port = self._wait_port()

    def _wait_port(self):
        prefix = "custos listening on http://127.0.0.1:"
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            with open(self.stdout_path, "r", errors="replace") as f:
                for line in f:
                    if line.startswith(prefix):
                        return int(line[len(prefix):].strip())
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        self.kill()
        with open(self.stderr_path, "r", errors="replace") as f:
            raise SetupError("custos serve did not start: " + f.read()[-2000:])

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


def request(conn, method, path, token, body=None, headers=None):
    h = {"Authorization": "Bearer " + token}
    if headers:
        h.update(headers)
    conn.request(method, path, body=body, headers=h)
    resp = conn.getresponse()
    return resp.status, resp.read()


def create_tenant(port, admin_token):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=HTTP_TIMEOUT)
    body = json.dumps({"name": "crash-test", "customer_type": "enterprise", "geography": "US",
                       "services": ["storage"], "technologies": [], "lockbox": False})
    status, data = request(conn, "POST", "/v1/tenants", admin_token, body,
                           {"Content-Type": "application/json"})
    conn.close()
    if status != 201:
        raise SetupError(f"POST /v1/tenants answered {status}: {data[:300]!r}")
    t = json.loads(data)
    return t["id"], t["admin_token"]


class KeyState:
    """What a key may read back as: the last acknowledged content, or an in-doubt later one."""

    __slots__ = ("acked", "in_doubt", "superseded", "acked_count", "logged_count")

    def __init__(self):
        self.acked = None        # sha256 hex of the last acknowledged write
        self.in_doubt = set()    # sha256 of writes sent after it whose answer never came
        self.superseded = set()  # earlier acknowledged contents (reading one = a lost update)
        self.acked_count = 0     # acknowledged writes of this key
        self.logged_count = 0    # data.write records of this key seen in the access log

    def acceptable(self):
        ok = set(self.in_doubt)
        if self.acked is not None:
            ok.add(self.acked)
        return ok


class Writer(threading.Thread):
    def __init__(self, port, tenant, token, round_no, idx, keys, lock, stop, rng):
        super().__init__(daemon=True)
        self.port, self.tenant, self.token = port, tenant, token
        self.round_no, self.idx = round_no, idx
        self.keys, self.lock, self.stop = keys, lock, stop
        self.rng = rng
        self.acked = 0
        self.mine = []  # keys this writer created (it alone writes them: per-key order holds)
        self.unexpected = []

    def run(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=HTTP_TIMEOUT)
        n = 0
        while not self.stop.is_set():
            if self.mine and self.rng.random() < 0.2:
                key = self.rng.choice(self.mine)
            else:
                key = f"crash/r{self.round_no}/w{self.idx}/{n}"
                n += 1
            content = os.urandom(self.rng.choice([0, 1, 100, 1024, 4096, 8192,
                                                  self.rng.randrange(1, 8193)]))
            digest = hashlib.sha256(content).hexdigest()
            with self.lock:
                state = self.keys.setdefault(key, KeyState())
                state.in_doubt.add(digest)
            try:
                status, data = request(conn, "PUT", f"/v1/tenants/{self.tenant}/objects/{key}",
                                       self.token, content,
                                       {"Content-Type": "application/octet-stream"})
            except (OSError, http.client.HTTPException):
                return  # the server died: this write stays in doubt
            if status not in (200, 201):
                # A refusal (e.g. 503) acknowledges nothing; the write may not have happened.
                self.unexpected.append(f"PUT {key} answered {status}: {data[:200]!r}")
                continue
            answered = json.loads(data).get("sha256")
            with self.lock:
                if answered != digest:
                    self.unexpected.append(f"PUT {key} answered sha256 {answered}, sent {digest}")
                if state.acked is not None and state.acked != digest:
                    state.superseded.add(state.acked)
                state.acked = digest
                state.acked_count += 1
                state.in_doubt.clear()
            if key not in self.mine:
                self.mine.append(key)
            self.acked += 1


def verify(port, tenant, token, items):
    """Reads back `items` [(key, KeyState)]; returns (lost, corrupt, unanswered, messages)."""
    lost, corrupt, unanswered, messages = [0], [0], [0], []
    lock = threading.Lock()
    chunks = [items[i::VERIFY_THREADS] for i in range(VERIFY_THREADS)]

    def check(chunk):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=HTTP_TIMEOUT)
        failures = 0
        for key, state in chunk:
            try:
                status, data = request(conn, "GET", f"/v1/tenants/{tenant}/objects/{key}", token)
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=HTTP_TIMEOUT)
                failures += 1
                with lock:
                    unanswered[0] += 1
                    messages.append(f"UNANSWERED GET {key}: {e!r}")
                if failures >= 3:
                    return  # the server is not answering: do not wait out every key
                continue
            ok = state.acceptable()
            if status == 404:
                if state.acked is not None:
                    with lock:
                        lost[0] += 1
                        messages.append(f"LOST {key}: acknowledged, now 404")
                continue
            if status != 200:
                with lock:
                    corrupt[0] += 1
                    messages.append(f"UNREADABLE {key}: GET answered {status}: {data[:200]!r}")
                continue
            got = hashlib.sha256(data).hexdigest()
            if got not in ok and got in state.superseded:
                with lock:
                    lost[0] += 1
                    messages.append(f"LOST {key}: reads an overwritten version, not {state.acked}")
            elif got not in ok:
                with lock:
                    corrupt[0] += 1
                    messages.append(f"CORRUPT {key}: read sha256 {got}, expected one of {ok}")
        conn.close()

    threads = [threading.Thread(target=check, args=(c,)) for c in chunks if c]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return lost[0], corrupt[0], unanswered[0], messages


class AccessLogReader:
    """Reads the tenant's data.write records incrementally (the cursor survives restarts)."""

    def __init__(self, tenant, token):
        self.tenant, self.token = tenant, token
        self.cursor = None

    def read_new(self, port, keys, lock):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3 * HTTP_TIMEOUT)
        while True:
            path = f"/v1/tenants/{self.tenant}/access-log?kind=data.write&limit=1000"
            if self.cursor is not None:
                path += f"&cursor={self.cursor}"
            try:
                status, data = request(conn, "GET", path, self.token)
            except (OSError, http.client.HTTPException) as e:
                raise Unanswered(f"GET access-log (cursor {self.cursor}): {e!r}") from e
            if status != 200:
                raise SetupError(f"GET access-log answered {status}: {data[:300]!r}")
            page = json.loads(data)
            with lock:
                for e in page["events"]:
                    key = json.loads(e["record"]).get("resource")
                    if key in keys:
                        keys[key].logged_count += 1
            if page.get("next_cursor") is None:
                if page["events"]:
                    self.cursor = page["events"][-1]["ledger_index"] + 1
                break
            self.cursor = page["next_cursor"]
        conn.close()


class CheckpointWatcher(threading.Thread):
    """Keeps the latest signed checkpoint the server serves during a round."""

    def __init__(self, port, stop):
        super().__init__(daemon=True)
        self.port, self.stop = port, stop
        self.note = None

    def run(self):
        while not self.stop.is_set():
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=HTTP_TIMEOUT)
                conn.request("GET", "/ledger/checkpoint")
                resp = conn.getresponse()
                body = resp.read()
                conn.close()
                if resp.status == 200:
                    self.note = body
            except (OSError, http.client.HTTPException):
                return  # killed
            time.sleep(0.05)


def verify_ledger(binary, port, work, round_no, note_before_kill):
    """Runs `custos ledger verify` against the restarted server with the checkpoint served
    before the kill as its saved state, so verify also checks that the log after the restart is
    consistent with it (holds every entry it committed to). Returns failure messages."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=HTTP_TIMEOUT)
    conn.request("GET", "/v1/ledger/vkey")
    resp = conn.getresponse()
    vkey = resp.read()
    conn.close()
    if resp.status != 200:
        return [f"LEDGER GET /v1/ledger/vkey answered {resp.status}"]
    vkey_path = os.path.join(work, "vkey")
    with open(vkey_path, "wb") as f:
        f.write(vkey)
    cmd = [binary, "ledger", "verify", "--url", f"http://127.0.0.1:{port}", "--vkey", vkey_path]
    if note_before_kill is not None:
        state = os.path.join(work, f"checkpoint-before-kill-{round_no}")
        with open(state, "wb") as f:
            f.write(note_before_kill)
        cmd += ["--state", state]
    # Checkpoints are append-only, so the latest one served now is at least the one seen before.
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        return [f"LEDGER verify failed: {r.stdout.strip()} {r.stderr.strip()}"]
    return []


def unlogged(items):
    """Acknowledged writes without their data.write record: [(key, missing)]."""
    return [(k, s.acked_count - s.logged_count) for k, s in items
            if s.acked_count > s.logged_count]


def dump_stacks(pid, path):
    """Saves every thread's stack of a server that stopped answering (needs gdb)."""
    gdb = shutil.which("gdb")
    if not gdb:
        return None
    with open(path, "w") as out:
        subprocess.run([gdb, "-p", str(pid), "-batch", "-ex", "thread apply all bt 30"],
                       stdout=out, stderr=subprocess.STDOUT, timeout=60, check=False)
    return path


def main():
    p = argparse.ArgumentParser(prog="crash-test", description=__doc__.split("\n")[0])
    p.add_argument("--binary", required=True, help="path of the custos binary")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--writers", type=int, default=8)
    p.add_argument("--seed", type=int, default=None, help="seed for delays and choices")
    p.add_argument("--init-arg", action="append", default=[], metavar="ARG",
                   help="extra argument for `custos init` (repeat), e.g. for another backend: "
                        "--init-arg=--backend --init-arg=postgresql --init-arg=--dsn ...")
    p.add_argument("--keep", action="store_true",
                   help="keep the data directory (kept anyway when a check fails)")
    args = p.parse_args()
    binary = os.path.abspath(args.binary)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)

    work = tempfile.mkdtemp(prefix="custos-crash.")
    data_dir = os.path.join(work, "data")
    server = None
    total_acked = total_lost = total_corrupt = total_unlogged = total_unanswered = 0
    total_unverified = 0
    keep = args.keep
    keys = {}  # key -> KeyState, over all rounds
    lock = threading.Lock()
    t0 = time.monotonic()
    try:
        init = subprocess.run([binary, "init", "--data-dir", data_dir] + args.init_arg,
                              capture_output=True, text=True)
        if init.returncode != 0:
            raise SetupError("custos init failed: " + init.stderr)
        with open(os.path.join(data_dir, "admin.token")) as f:
            admin_token = f.read().strip()
        server = Server(binary, data_dir, work, 0)
        tenant, token = create_tenant(server.port, admin_token)
        log_reader = AccessLogReader(tenant, token)

        for r in range(1, args.rounds + 1):
            stop = threading.Event()
            writers = [Writer(server.port, tenant, token, r, i, keys, lock, stop,
                              random.Random(rng.random())) for i in range(args.writers)]
            for w in writers:
                w.start()
            watcher = CheckpointWatcher(server.port, stop)
            watcher.start()
            delay = rng.uniform(0.2, 1.5)
            time.sleep(delay)
            server.kill()  # SIGKILL at a random moment under the write load
            stop.set()
            for w in writers:
                w.join()
            watcher.join()
            acked = sum(w.acked for w in writers)
            unexpected = [m for w in writers for m in w.unexpected]
            restart_at = time.monotonic()
            try:
                server = Server(binary, data_dir, work, r)
            except SetupError as e:
                server = None
                keep = True
                print(f"round {r}: killed after {delay:.2f}s; the server did not restart: {e}")
                print(f"crash-test: FAILED: custos serve does not restart after SIGKILL "
                      f"(round {r}, seed {seed})")
                return 1
            restart = time.monotonic() - restart_at
            verify_at = time.monotonic()

            round_prefix = f"crash/r{r}/"
            with lock:
                this_round = [(k, s) for k, s in keys.items() if k.startswith(round_prefix)]
                earlier = [(k, s) for k, s in keys.items() if not k.startswith(round_prefix)]
            if r < args.rounds and len(earlier) > EARLIER_SAMPLE:
                earlier = rng.sample(earlier, EARLIER_SAMPLE)
            lost, corrupt, unanswered, messages = verify(server.port, tenant, token,
                                                         this_round + earlier)
            n_unlogged = 0
            if not unanswered:
                try:
                    log_reader.read_new(server.port, keys, lock)
                    missing = unlogged(this_round)
                    messages += [f"UNLOGGED {k}: {n} acknowledged write(s) without a data.write "
                                 "record" for k, n in missing]
                    n_unlogged = sum(n for _, n in missing)
                except Unanswered as e:
                    unanswered += 1
                    messages.append(f"UNANSWERED {e}")
            n_unverified = 0
            if not unanswered:
                failed = verify_ledger(binary, server.port, work, r, watcher.note)
                messages += failed
                n_unverified = len(failed)
            if unanswered:
                keep = True
                stacks = dump_stacks(server.proc.pid, os.path.join(work, f"stacks-round-{r}.txt"))
                messages.append(f"server pid {server.proc.pid} stopped answering after restart; "
                                f"stacks: {stacks or 'gdb not found'}")
            total_unlogged += n_unlogged
            total_unverified += n_unverified
            total_unanswered += unanswered
            total_acked += acked
            total_lost += lost
            total_corrupt += corrupt
            for m in (unexpected + messages)[:20]:
                print("  " + m)
            print(f"round {r}: killed after {delay:.2f}s, restarted in {restart:.2f}s, "
                  f"{acked} acknowledged, "
                  f"{sum(1 for _, s in this_round if s.acked is None)} in doubt, checked "
                  f"{len(this_round)} + {len(earlier)} earlier: {lost} lost, {corrupt} corrupt, "
                  f"{n_unlogged} unlogged"
                  + (", ledger verified" if not n_unverified else ", LEDGER NOT VERIFIED")
                  + (f", {unanswered} unanswered" if unanswered else "")
                  + (f", {len(unexpected)} unexpected answers" if unexpected else "")
                  + f" ({time.monotonic() - verify_at:.1f}s)",
                  flush=True)
    except SetupError as e:
        print(f"crash-test: setup failed: {e}", file=sys.stderr)
        return 2
    finally:
        if server is not None:
            server.kill()
        if keep or total_lost or total_corrupt or total_unlogged or total_unverified:
            print(f"crash-test: kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"crash-test: {args.rounds} rounds, {total_acked} acknowledged writes, "
          f"{total_lost} lost, {total_corrupt} corrupt, {total_unlogged} unlogged, "
          f"{total_unanswered} unanswered, {total_unverified} ledger verify failures "
          f"({len(keys)} keys, seed {seed}, {time.monotonic() - t0:.1f}s)")
    return 1 if (total_lost or total_corrupt or total_unlogged or total_unanswered
                 or total_unverified) else 0


if __name__ == "__main__":
    sys.exit(main())
