"""Measurements for scripts/bench (see there). Prints figures; exits non-zero only when the
tool fails or a correctness check at scale does not hold."""

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

tool, pg_bin, dump, after_dump, downgrade, breaks, runs, rows, work = sys.argv[1:10]
runs = int(runs)
med = statistics.median
RULE = ("public.onboarding_states /step_data/_migration_metadata "
        "/current_step=/original_current_step /step_data=/original_step_data")


def run_measured(args):
    """Run the tool; return (wall seconds, peak RSS MiB of the pgsnapdiff process, stdout)."""
    start = time.monotonic()
    p = subprocess.Popen([tool, *args], stdout=subprocess.PIPE, text=True)
    peak = [0]

    def sample():  # VmHWM of pgsnapdiff itself, not its postgres children, every 20 ms
        while True:
            try:
                with open(f"/proc/{p.pid}/status") as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            peak[0] = max(peak[0], int(line.split()[1]))
            except (FileNotFoundError, ProcessLookupError):
                return
            time.sleep(0.02)

    t = threading.Thread(target=sample)
    t.start()
    out, _ = p.communicate()
    t.join()
    return time.monotonic() - start, peak[0] / 1024, out, p.returncode


def check_args(sql, tmp, extra=()):
    return ["check", "-q", "--config", "/dev/null", "--dump", dump, "--downgrade-sql", sql,
            "--pg-bin", pg_bin, "--work-dir", work, "--metadata-rule", RULE,
            # The sample migration's intended loss (data-lost rule).
            "--allow-lost", "public.onboarding_states.agent_history",
            "-o", os.path.join(tmp, "patch.json"), *extra]


def bare(cmd):
    start = time.monotonic()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.monotonic() - start


# The tool's outputs (a 2.2 GB patch at 1M rows) go to the work dir too: on the same disk as
# the bare work, not throttled by a slow /tmp.
with tempfile.TemporaryDirectory(dir=work) as tmp:
    phases, totals, rss = {}, [], []
    for _ in range(runs):
        wall, peak, out, code = run_measured(check_args(downgrade, tmp))
        if code != 0:
            sys.exit(f"pgsnapdiff check exited {code} on the correct downgrade:\n{out}")
        totals.append(wall)
        rss.append(peak)
        timing = next(l for l in out.splitlines() if l.startswith("timing"))
        for name, secs in re.findall(r"([\w+ ]+?) ([\d.]+)s", timing.removeprefix("timing")):
            phases.setdefault(name.strip(" ,"), []).append(float(secs))
        ops = re.search(r"patch\s+(\d+) operations", out).group(1)

    restore, down = [], []
    for i in range(runs):
        db = f"bare{i}"
        subprocess.run([f"{pg_bin}/createdb", db], check=True)
        restore.append(bare([f"{pg_bin}/pg_restore", "--no-owner", "--no-privileges", "-d", db, dump]))
        down.append(bare([f"{pg_bin}/psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-1", "-d", db,
                          "-f", downgrade]))
        subprocess.run([f"{pg_bin}/dropdb", db], check=True)

    # Snapshot files of both states (once), then the pure file diff.
    snaps = []
    for name, d in (("before", dump), ("after", after_dump)):
        path = f"{os.path.splitext(d)[0]}.{name}.json"
        if not os.path.exists(path):
            subprocess.run([tool, "snapshot", "-q", "--config", "/dev/null", "--dump", d,
                            "--pg-bin", pg_bin, "--work-dir", work,
                            "--table", "public.onboarding_states", "-o", path], check=True)
        snaps.append(path)
    diff_times, diff_rss = [], []
    for _ in range(runs):
        wall, peak, _, code = run_measured(["diff", "-q", *snaps, "-o", os.path.join(tmp, "d.json")])
        if code not in (0, 1):
            sys.exit(f"pgsnapdiff diff exited {code}")
        diff_times.append(wall)
        diff_rss.append(peak)

    # A mostly unchanged pair: the after snapshot against a copy with 10 rows edited (one row
    # per line is the file layout), for the rows/s of `diff` when equal rows dominate.
    edited = f"{os.path.splitext(after_dump)[0]}.edited.json"
    if not os.path.exists(edited):
        with open(snaps[1]) as src, open(edited + ".tmp", "w") as dst:
            for line in src:
                m = re.match(r'      "(\d+)": ', line)
                if m and 1001 <= int(m.group(1)) <= 1010:
                    flipped = line.replace('"is_complete":false', '"is_complete":true', 1)
                    line = flipped if flipped != line else line.replace(
                        '"is_complete":true', '"is_complete":false', 1)
                dst.write(line)
        os.replace(edited + ".tmp", edited)
    same_times, same_rss = [], []
    for _ in range(runs):
        out_path = os.path.join(tmp, "e.json")
        wall, peak, _, code = run_measured(["diff", "-q", snaps[1], edited, "-o", out_path])
        with open(out_path) as f:
            edited_ops = len(json.load(f))
        if code != 1 or edited_ops != 10:
            sys.exit(f"pgsnapdiff diff of the 10-row edit: exit {code}, {edited_ops} operations")
        same_times.append(wall)
        same_rss.append(peak)

    # Correctness at scale: exactly the 10 broken rows.
    result = os.path.join(tmp, "result.json")
    _, _, out, code = run_measured(check_args(breaks, tmp, ["--result-out", result]))
    with open(result) as f:
        doc = json.load(f)
    keys = sorted({int(x["key"]) for x in doc["findings"] if x["rule"] == "metadata-restored"})
    broken_ok = code == 1 and keys == list(range(1001, 1011))

    # Downgrades that touch little (README "Untouched tables"): only the revision moves; or 1%
    # of one table is fixed up. No rule reads the big table, so what the downgrade never wrote
    # is counted, not read. Tool wall against bare restore + the same downgrade through psql.
    small = {
        "revision only": "UPDATE alembic_version SET version_num = 'a1b2c3d4e5f6';",
        "1% of users fixed": "UPDATE users SET display_name = display_name || ' (fixed)' "
                             "WHERE id % 100 = 0;\n"
                             "UPDATE alembic_version SET version_num = 'a1b2c3d4e5f6';",
    }
    small_results = {}
    for name, sql in small.items():
        path = os.path.join(tmp, "small.sql")
        with open(path, "w") as f:
            f.write(sql + "\n")
        walls, bares = [], []
        for i in range(runs):
            wall, _, out, code = run_measured(
                ["check", "-q", "--config", "/dev/null", "--dump", dump, "--downgrade-sql", path,
                 "--pg-bin", pg_bin, "--work-dir", work, "-o", os.path.join(tmp, "s.json")])
            if code != 0:
                sys.exit(f"pgsnapdiff check exited {code} on the {name} downgrade:\n{out}")
            walls.append(wall)
            db = f"small{i}"
            subprocess.run([f"{pg_bin}/createdb", db], check=True)
            r = bare([f"{pg_bin}/pg_restore", "--no-owner", "--no-privileges", "-d", db, dump])
            d = bare([f"{pg_bin}/psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-1", "-d", db,
                      "-f", path])
            subprocess.run([f"{pg_bin}/dropdb", db], check=True)
            bares.append(r + d)
        small_results[name] = (med(walls), med(bares))

print(f"\n{rows} rows, {os.path.getsize(dump) / 2**20:.1f} MiB custom dump, {runs} runs (medians), "
      f"{ops} patch operations, work dir {work}")
for name, values in phases.items():
    print(f"  {name:<12} {med(values):7.2f} s")
print(f"  {'tool total':<12} {med(totals):7.2f} s   (wall, including binary resolution and cleanup)")
print(f"  {'peak RSS':<12} {med(rss):7.1f} MiB (pgsnapdiff process, VmHWM)")
print(f"  bare pg_restore {med(restore):.2f} s, bare downgrade {med(down):.2f} s")
print(f"  overhead = {med(totals) / (med(restore) + med(down)):.2f}x")
rows_n = int(rows)
print(f"  pgsnapdiff diff of two {rows_n}-row snapshot files: {med(diff_times):.2f} s = "
      f"{rows_n / med(diff_times) / 1000:.0f}k rows/s, peak RSS {med(diff_rss):.1f} MiB")
print(f"  pgsnapdiff diff, 10 of {rows_n} rows changed: {med(same_times):.2f} s = "
      f"{rows_n / med(same_times) / 1000:.0f}k rows/s, peak RSS {med(same_rss):.1f} MiB")
for name, (wall, bare_total) in small_results.items():
    print(f"  {name + ':':<19} tool {wall:.2f} s, bare restore + downgrade {bare_total:.2f} s, "
          f"overhead = {wall / bare_total:.2f}x")
print(f"  correctness: correct downgrade proven; 10 broken rows reported as "
      f"{'exactly those 10' if broken_ok else f'{keys[:20]} (exit {code}) - WRONG'}")
if not broken_ok:
    sys.exit(1)
