"""Result files: one JSON per suite under bench/results/, with the commit,
date, machine and the raw samples, and the table printed from it."""

import datetime
import json
import os
import platform
import subprocess

import stats

SCHEMA = 1


def kvm_kind():
    """'hardware', 'pvm' (this project's development machines: /dev/kvm
    without VMX/SVM, see README) or 'none'."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "none"
    with open("/proc/cpuinfo") as cpuinfo:
        flags = next((line.split() for line in cpuinfo if line.startswith("flags")), [])
    if "vmx" in flags or "svm" in flags:
        return "hardware"
    return "pvm" if os.path.exists("/sys/module/kvm_pvm") else "unknown"


def machine():
    """What the numbers were measured on, and how busy it was."""
    model = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as meminfo:
        mem_kib = int(meminfo.readline().split()[1])
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "mem_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "kvm": kvm_kind(),
        "loadavg": os.getloadavg()[0],
    }


def commit(repo):
    """The commit measured, with '-dirty' when the tree had changes."""
    def git(*args):
        try:
            return subprocess.run(["git", "-C", repo, *args], capture_output=True,
                                  text=True, check=False).stdout.strip()
        except OSError:  # no git: a tarball
            return ""
    head = git("rev-parse", "HEAD") or "unknown"
    return head + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def build(suite, phases, repo, quick):
    """The result document of @suite from its measured phases (raw dicts
    with "phase", "comparisons", "notes", "where", "machine" and "extra").
    A phase measured in several chunks (test host runs) comes as several
    raw dicts of that phase: their samples are joined, pair for pair."""
    merged, notes, where, extra = {}, [], {}, {}
    for raw in phases:
        for c in raw.get("comparisons", []):
            if c["key"] in merged:
                merged[c["key"]]["a_samples"] += c["a_samples"]
                merged[c["key"]]["b_samples"] += c["b_samples"]
            else:
                merged[c["key"]] = dict(c, a_samples=list(c["a_samples"]),
                                        b_samples=list(c["b_samples"]))
        notes += [n for n in raw.get("notes", []) if n not in notes]
        info = where.setdefault(raw["phase"], {"where": raw["where"], "machine": raw["machine"],
                                                "runs": 0, "loadavg_after": []})
        info["runs"] += 1
        info["loadavg_after"].append(raw.get("loadavg_after"))
        extra.setdefault(raw["phase"], []).append(raw.get("extra", {}))
    return {
        "schema": SCHEMA,
        "suite": suite,
        "commit": commit(repo),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "quick": quick,
        "machine": machine(),
        "phases": where,
        "notes": notes,
        "comparisons": [stats.compare(c) for c in merged.values()],
        "extra": extra,
    }


def write(doc, path):
    tmp = path + ".tmp"
    with open(tmp, "w") as out:
        json.dump(doc, out, indent=1, sort_keys=False)
        out.write("\n")
    os.replace(tmp, path)


def read(path):
    with open(path) as f:
        doc = json.load(f)
    if doc.get("schema") != SCHEMA:
        raise ValueError("%s: result schema %r, expected %d" % (path, doc.get("schema"), SCHEMA))
    return doc


def table(doc):
    """The comparisons of a result document as aligned text lines."""
    rows = [("metric", "unit", "A median", "B median", "A/B median (min-max)", "pairs",
             "A/B is")]
    for c in doc["comparisons"]:
        a, b, r = c["a_summary"], c["b_summary"], c["ratio_summary"]
        rows.append((c["title"], c["unit"],
                     stats.format_value(a and a["median"], c["unit"]),
                     stats.format_value(b and b["median"], c["unit"]),
                     stats.format_ratio(r), str(r["n"] if r else 0),
                     "%s/%s (%s is better)" % (c["a"], c["b"], c["better"])))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
