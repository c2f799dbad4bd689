"""Summaries of benchmark samples: pure functions, no I/O (tests/bench)."""

import statistics


def summary(samples):
    """n, min, median and max of a list of numbers (None if it is empty)."""
    values = [v for v in samples if v is not None]
    if not values:
        return None
    return {
        "n": len(values),
        "min": min(values),
        "median": statistics.median(values),
        "max": max(values),
    }


def pair_ratios(a_samples, b_samples):
    """a[i] / b[i] for each pair measured together; pairs with a missing or
    zero value are skipped (a ratio to nothing means nothing)."""
    if len(a_samples) != len(b_samples):
        raise ValueError("ratios need pairs: %d samples against %d"
                         % (len(a_samples), len(b_samples)))
    return [a / b for a, b in zip(a_samples, b_samples)
            if a is not None and b is not None and b != 0]


def compare(comparison):
    """Adds the summaries and per-pair ratios to a comparison: a dict with
    "a_samples" and "b_samples" measured in alternation (a, b, a, b...)."""
    out = dict(comparison)
    out["a_summary"] = summary(comparison["a_samples"])
    out["b_summary"] = summary(comparison["b_samples"])
    out["ratio_samples"] = pair_ratios(comparison["a_samples"], comparison["b_samples"])
    out["ratio_summary"] = summary(out["ratio_samples"])
    return out


def format_value(value, unit):
    """A number for a table: 3 significant digits, the unit's scale kept."""
    if value is None:
        return "-"
    if unit in ("count", "KiB") or (abs(value) >= 100 and float(value).is_integer()):
        return "%d" % round(value)
    if abs(value) >= 100:
        return "%.0f" % value
    if abs(value) >= 10:
        return "%.1f" % value
    return "%.2f" % value


def format_ratio(summary_):
    """ "0.93 (0.88-1.02)": median ratio with its min and max."""
    if not summary_:
        return "-"
    return "%.2f (%.2f-%.2f)" % (summary_["median"], summary_["min"], summary_["max"])
