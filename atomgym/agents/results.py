"""The results schema: the columns of episodes.csv, its one writer (a finished block appended
atomically), its one reader (``read_columns``: the rules every user of an episodes.csv gets; reports
take it as a DataFrame, ``--resume`` as rows to continue), a block's rows with their scores, and
blocks.json (each block's identity, agents/identity.py)."""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np

from atomgym import files, safefiles
from atomgym.agents import command
from atomgym.agents import identity
from atomgym.agents.usage import UsageError
from atomgym.envs.cost import score as env_score

REFERENCE = "kernel-default"                 # every score is relative to it (same scenario and seed)
METRICS = ("drops_total", "drops_rx_missed", "drops_rcvbuf", "drops_pfmemalloc", "atomic_fail", "fail_atomic",
           "fail_kernel", "fail_nowait", "fail_memalloc", "refill_deferred", "reserved_mib_s", "min_reserve_mib_s", "stall_s",
           "throttle_stall_s", "kswapd_runs", "kswapd_wakeups", "allocstall", "oom_kill", "knob_changes",
           "tuner_actions", "terminated", "final_min_free_kbytes", "final_wsf", "cost", "score")
COLUMNS = ["policy", "run", "scenario", "seed", "duration_s", "wall_s", *METRICS]
# the reader: the columns it needs (reports merge files of any column order), the text ones, its bounds
NEED = ("policy", "scenario", "seed", "score", "atomic_fail", "drops_total", "reserved_mib_s", "stall_s")
TEXT = ("policy", "run", "scenario")
MAX_BYTES = 1 << 30
# No episode metric comes near this (a day of a 64 GiB machine's reserve is ~6e9 MiB.s); beyond
# it, sums and variances overflow and the tables would print inf and nan.
MAX_VALUE = 1e15


def read_text(path: Path) -> str:
    """The text of an episodes.csv, as the reader takes it: bounded (MAX_BYTES), a regular file only
    (a link to /dev/zero is refused unread), UTF-8 with a spreadsheet's byte-order mark dropped.
    files.FileError or UnicodeDecodeError otherwise."""
    return files.read_bytes(path, MAX_BYTES, "an agents.evaluate episodes.csv").decode("utf-8-sig")


def read_episodes(path: Path) -> list[dict]:
    """The rows of an episodes.csv agents.evaluate wrote, to continue (``--resume``): read_columns's
    rows (a torn or edited row would otherwise be counted as finished and appended to), in a file of
    exactly this version's columns (the next block is appended with them). UsageError, one line."""
    tail = "--force starts afresh (the old rows are lost), or choose another --out"
    try:
        cols = read_columns(path)
    except ValueError as e:
        raise UsageError(f"{e}; {tail}") from None
    if list(cols) != COLUMNS:
        raise UsageError(f"{path}: not an episodes.csv of this version of agents.evaluate (its columns differ); "
                         f"{tail}")
    return [dict(zip(cols, vals)) for vals in zip(*cols.values())]


def append_block(path: Path, rows: list[dict]) -> None:
    """Append one finished block of rows to ``path`` atomically (the old content plus the new rows
    are written to a temporary file that replaces it): a crash leaves the file with or without the
    whole block, never half of it."""
    buf = io.StringIO()
    if path.is_file():
        buf.write(path.read_text())
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    if buf.tell() == 0:
        w.writeheader()
    w.writerows(rows)
    safefiles.replace_text(path, buf.getvalue())


def block_rows(spec, sc_name: str, seeds: np.ndarray, dur: float, wall: float, res: list[dict],
          ref_cost: np.ndarray) -> list[dict]:
    out = []
    for i, r in enumerate(res):
        r = dict(r)
        r["score"] = env_score(r["cost"], float(ref_cost[i]))
        out.append({"policy": spec.label, "run": spec.run, "scenario": sc_name, "seed": int(seeds[i]),
                    "duration_s": dur, "wall_s": round(wall / len(seeds), 4), **{k: r[k] for k in METRICS}})
    return out


def read_columns(path: Path) -> dict[str, list]:
    """The one reader of an episodes.csv (every user calls it, through load_rows or read_episodes):
    its columns in file order, each a list of the rows' values (text for TEXT, int for seed, float
    else). The columns NEED in any order; blank lines and repeated headers (concatenated files)
    skipped; every row as many fields as the header, a name not empty, a number finite and at most
    MAX_VALUE, a seed an integer >= 0. Anything else: ValueError, one line naming the file, the line
    and the column."""
    if path.is_dir():
        raise ValueError(f"{path}: is a folder; expected an agents.evaluate episodes.csv")
    try:
        text = read_text(path)
    except files.FileError as e:
        raise ValueError(str(e).replace(f"larger than {MAX_BYTES >> 20:g} MiB",
                                        f"larger than {MAX_BYTES >> 20} MiB")) from None
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: byte {e.start}: not UTF-8 text; expected an agents.evaluate episodes.csv") from None
    if "\x00" in text:
        line = text[:text.index("\x00")].count("\n") + 1
        raise ValueError(f"{path}: line {line}: a NUL byte; expected an agents.evaluate episodes.csv")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        while header is not None and not any(h.strip() for h in header):
            header = next(reader, None)
        if header is None:
            raise ValueError(f"{path}: empty; expected an agents.evaluate episodes.csv with columns {', '.join(NEED)}")
        header = [h.strip() for h in header]
        missing = [c for c in NEED if c not in header]
        if missing:
            raise ValueError(f"{path}: line {reader.line_num}: missing column(s) {', '.join(missing)}; "
                             f"not an agents.evaluate episodes.csv (needs {', '.join(NEED)})")
        if len(set(header)) != len(header):
            dup = sorted({h for h in header if header.count(h) > 1})
            raise ValueError(f"{path}: line {reader.line_num}: column(s) {', '.join(dup)} twice")
        cols: dict[str, list] = {h: [] for h in header}
        for row in reader:
            ln = reader.line_num
            if not row or not any(c.strip() for c in row):
                continue
            if [c.strip() for c in row] == header:       # a repeated header (concatenated files)
                continue
            if len(row) != len(header):
                raise ValueError(f"{path}: line {ln}: {len(row)} fields, expected {len(header)} ({', '.join(header)})")
            for h, v in zip(header, row):
                v = v.strip()
                if h in TEXT:
                    if not v:
                        raise ValueError(f"{path}: line {ln}, column {h}: empty; expected a name")
                    cols[h].append(v)
                    continue
                try:
                    x = float(v)
                except ValueError:
                    raise ValueError(f"{path}: line {ln}, column {h}: {v!r} is not a number") from None
                if not math.isfinite(x) or abs(x) > MAX_VALUE:   # 1e308: means and CIs would be inf/nan
                    raise ValueError(f"{path}: line {ln}, column {h}: {v[:40]!r}; expected a finite number "
                                     f"of magnitude at most {MAX_VALUE:g}")
                if h == "seed" and (x != int(x) or x < 0):
                    raise ValueError(f"{path}: line {ln}, column seed: {v!r}; expected an integer >= 0")
                cols[h].append(int(x) if h == "seed" else x)
    except csv.Error as e:
        raise ValueError(f"{path}: line {reader.line_num}: {e}") from None
    if not cols[header[0]]:
        raise ValueError(f"{path}: no episodes (only a header); run {command('evaluate')} first")
    return cols


def load_rows(path: Path):
    """The episodes of an agents.evaluate CSV (read_columns) as a pandas DataFrame, for reports; a
    file without the run column gets run "-"."""
    import pandas as pd            # imported here: pandas takes a second, only reports need it
    df = pd.DataFrame(read_columns(path))
    if "run" not in df:
        df["run"] = "-"
    return df


BLOCKS_FILE = "blocks.json"      # beside episodes.csv: each finished block's identity


BLOCKS_FORMAT = "atomgym-evaluate-blocks"


MAX_BLOCKS_BYTES = 64 << 20


def block_identity(spec, sc, seeds: np.ndarray, dur: float, memo: dict | None = None) -> dict:
    """What a block's rows depend on (agents/identity.py): the scenario's content, the episode
    length, the seeds, the policy (a model: its files' bytes), the simulator and the cost.
    ``memo``: digests already computed in this evaluation (a model under several plays is hashed once)."""
    memo = {} if memo is None else memo

    def once(key: tuple, f) -> str:
        if key not in memo:
            memo[key] = f()
        return memo[key]

    return {"scenario": once(("scenario", sc.name), lambda: identity.scenario_digest(sc)),
            "duration_s": float(dur), "seeds": [int(seeds[0]), len(seeds)],
            "policy": (f"{spec.play}:" + once(("model", str(spec.path)), lambda: identity.model_digest(spec.path))
                       if spec.kind == "model" else
                       spec.how + ":" + "+".join(once(("model", str(p)), lambda p=p: identity.model_digest(p)) for p in spec.paths)
                       if spec.kind == "ensemble" else spec.label),
            "simulator": once(("simulator",), identity.simulator_digest),
            "cost": once(("cost",), identity.cost_digest)}


def read_blocks(path: Path, csv_path: Path) -> dict[tuple, dict]:
    """The recorded identities of DIR/blocks.json ({} if there is none); UsageError if damaged."""
    if not path.exists():
        return {}
    try:
        d = files.read_json(path, MAX_BLOCKS_BYTES, f"the block identities of {csv_path.name}")
        if not isinstance(d, dict) or d.get("format") != BLOCKS_FORMAT or not isinstance(d.get("blocks"), list):
            raise ValueError("not a blocks file")
        out = {}
        for b in d["blocks"]:
            key = (b["policy"], b["run"], b["scenario"])
            if not all(isinstance(x, str) for x in key) or not isinstance(b["identity"], dict):
                raise ValueError("malformed entry")
            out[key] = b["identity"]
        return out
    except (ValueError, KeyError, TypeError):       # files.FileError is a ValueError
        raise UsageError(f"{path}: not the block identities of {csv_path.name}; --force starts afresh, "
                         "or choose another --out") from None


def write_blocks(path: Path, recorded: dict[tuple, dict]) -> None:
    blocks = [{"policy": p, "run": r, "scenario": s, "identity": i} for (p, r, s), i in recorded.items()]
    safefiles.replace_text(path, json.dumps({"format": BLOCKS_FORMAT, "blocks": blocks}, indent=1) + "\n")


def _describe(k: str, old, new) -> str:
    if k == "duration_s" and isinstance(old, (int, float)):
        return f"it was run with --duration-s {old:g}, not {new:g}"
    if k == "seeds" and isinstance(old, list) and len(old) == 2 and all(isinstance(x, int) for x in old):
        return f"it was run on seeds {old[0]}..{old[0] + old[1] - 1}, not {new[0]}..{new[0] + new[1] - 1}"
    return f"{identity.WHAT[k]} changed since it was run"


def check_resume(csv_path: Path, rows: list[dict], recorded: dict[tuple, dict], idents: dict[tuple, dict]) -> None:
    """--resume continues only blocks that would give the same rows: a block with rows whose
    recorded identity differs from now (another duration, seeds, scenario file, model, simulator
    or cost) or that has none is refused, one line naming what changed; so is any recorded block
    of another simulator or cost (the file would mix two)."""
    have = dict.fromkeys((r["policy"], r["run"], r["scenario"]) for r in rows)
    tail = "--force starts afresh (the old rows are lost), or choose another --out"
    for key in have:
        if key not in recorded:
            raise UsageError(f"{csv_path}: {key[0]} on {key[2]} has no recorded identity in {BLOCKS_FILE} "
                             f"(written by an older agents.evaluate, or the file was removed): what it was run "
                             f"with cannot be checked; {tail}")
    now = next(iter(idents.values()))
    checks = [(k, idents[k]) for k in idents if k in have]
    # every recorded block, asked for now or not: one simulator and one cost per file
    checks += [(k, {c: now[c] for c in ("simulator", "cost")}) for k in recorded if k in have]
    for key, new in checks:
        old = recorded[key]
        diff = identity.changed(old, new)
        if diff:
            k = diff[0]
            raise UsageError(f"{csv_path}: {key[0]} on {key[2]}: {_describe(k, old.get(k), new[k])}; "
                             f"--resume would mix two experiments; {tail}")
