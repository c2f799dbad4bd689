"""PNG plots of a suite's result document (Debian's python3-matplotlib).

SUITE.png: every comparison's per-pair ratios A/B as a box with its points,
on a log scale around 1 (the table's numbers, drawn). SUITE-values.png:
each comparison's samples of A and B side by side, in their units.
"""

import math
import random

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

A_COLOR, B_COLOR = "#1f77b4", "#ff7f0e"


def _points(ax, values, position, color, horizontal=False):
    jitter = random.Random(position)  # the same picture for the same data
    offsets = [position + jitter.uniform(-0.12, 0.12) for _ in values]
    if horizontal:
        ax.scatter(values, offsets, s=10, color=color, zorder=3)
    else:
        ax.scatter(offsets, values, s=10, color=color, zorder=3)


def _subtitle(doc):
    where = ", ".join("%s: %s" % (phase, info["where"]) for phase, info in doc["phases"].items())
    return "%s, commit %s, %s (%s)%s" % (
        doc["date"][:10], doc["commit"][:12], doc["machine"]["cpu"], where,
        ", QUICK run" if doc["quick"] else "")


def ratios(doc, path):
    rows = [c for c in doc["comparisons"] if c["ratio_samples"]]
    if not rows:
        return False
    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.42 * len(rows)))
    labels = []
    for i, c in enumerate(reversed(rows)):
        ax.boxplot([c["ratio_samples"]], positions=[i], vert=False, widths=0.5,
                   showfliers=False, medianprops={"color": "black"})
        _points(ax, c["ratio_samples"], i, A_COLOR, horizontal=True)
        labels.append("%s  [%s/%s, %s is better]" % (c["title"], c["a"], c["b"], c["better"]))
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    ax.axvline(1.0, color="grey", linestyle="--", linewidth=1)
    ax.set_xscale("log")
    low = min(min(c["ratio_samples"]) for c in rows)
    high = max(max(c["ratio_samples"]) for c in rows)
    ax.set_xlim(min(low, 1.0) / 1.15, max(high, 1.0) * 1.15)
    left, right = ax.get_xlim()
    ticks = [m * 10.0 ** e for e in range(-4, 4) for m in (1, 2, 5)]
    ax.set_xticks([t for t in ticks if left <= t <= right])
    ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("ratio A/B per pair (log scale; 1 = equal)")
    ax.set_title("%s: ratios\n%s" % (doc["suite"], _subtitle(doc)), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def values(doc, path):
    rows = [c for c in doc["comparisons"] if c["a_summary"] or c["b_summary"]]
    if not rows:
        return False
    columns = 3
    lines = math.ceil(len(rows) / columns)
    fig, axes = plt.subplots(lines, columns, figsize=(12, 2.6 * lines), squeeze=False)
    for ax, c in zip(axes.flat, rows):
        for position, side, color in ((0, "a", A_COLOR), (1, "b", B_COLOR)):
            samples = [v for v in c[side + "_samples"] if v is not None]
            if samples:
                ax.boxplot([samples], positions=[position], widths=0.5, showfliers=False,
                           medianprops={"color": "black"})
                _points(ax, samples, position, color)
        ax.set_xticks([0, 1], [c["a"], c["b"]], fontsize=8)
        ax.set_xlim(-0.6, 1.6)
        ax.set_ylim(bottom=0)
        ax.set_ylabel(c["unit"], fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
        ax.set_title(c["title"], fontsize=8)
    for ax in list(axes.flat)[len(rows):]:
        ax.axis("off")
    fig.suptitle("%s: samples\n%s" % (doc["suite"], _subtitle(doc)), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
