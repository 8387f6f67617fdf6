"""Draw a benchmark record as a bar chart: one panel per scenario, one bar per server.

    python bench/plot.py bench/results/latest.json bench/results/latest.png

``bench/run.py`` calls this with whichever Python can import matplotlib. Bars show the median
req/s (MB/s for the large file, messages/s for WebSocket echo, bytes per connection for idle
WebSockets, where the multiple is inverted so that above 1 still means treadle is ahead);
treadle's bar is highlighted, and each peer's bar is labelled with treadle's multiple of it.
In a scenario with another reference (the workers scenarios: ``treadle-w2``), that server's
bar is highlighted and the others are labelled with its multiple of them.
"""

from __future__ import annotations

import json
import math
import sys
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

COLORS = {"treadle": "#d9661f", "treadle-w1": "#eeaa80", "nginx": "#9db4c0"}
DEFAULT_COLOR = "#5c6b73"


def main(json_path: str, png_path: str) -> None:
    with open(json_path) as f:
        record = json.load(f)
    panels = []
    for name, per_server in record["results"].items():
        meta = record["scenarios"][name]
        bars = [
            (server, s[meta["metric"]])
            for server, s in per_server.items()
            if s.get("status") == "ok" and s.get(meta["metric"])
        ]
        if bars:
            panels.append((name, meta, bars, per_server))
    if not panels:
        raise SystemExit("no results to draw")
    cols = 2 if len(panels) > 1 else 1
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(6.5 * cols, 0.45 * 6 * rows + 1.2 * rows), squeeze=False
    )
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    for ax, (_name, meta, bars, per_server) in zip(axes.flat, panels, strict=False):
        metric = meta["metric"]
        servers = [b[0] for b in bars][::-1]
        values = [b[1] for b in bars][::-1]
        reference = meta.get("reference", "treadle")
        colors = [
            COLORS["treadle"] if s == reference else COLORS.get(s, DEFAULT_COLOR) for s in servers
        ]
        ax.barh(servers, values, color=colors)
        ref = per_server.get(reference, {})
        top = max(values)
        for y, (server, value) in enumerate(zip(servers, values, strict=True)):
            label = f"{value:,.0f}"
            if server != reference and ref.get("status") == "ok" and value:
                multiple = (
                    value / ref[metric] if meta.get("lower_is_better") else ref[metric] / value
                )
                label += f"  ({reference} {multiple:.2f}x)"
            ax.text(value + top * 0.01, y, label, va="center", fontsize=8)
        ax.set_xlim(0, top * 1.45)
        # Long titles wrap rather than run into the neighbouring panel's.
        ax.set_title(textwrap.fill(meta["title"], 80), fontsize=9, loc="left")
        default_unit = "MB/s" if metric == "mbps" else "requests/s"
        ax.set_xlabel(meta.get("unit", default_unit).replace("req/s", "requests/s"), fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(axis="x", alpha=0.3)
    env = record.get("environment", {})
    cfg = record.get("config", {})
    fig.suptitle(
        f"treadle benchmark {record['date']} — median of {cfg.get('rounds')} round(s) of "
        f"{cfg.get('duration_s')} s; {env.get('cpu', '')}, server and wrk on one core each"
        + (
            " (workers: see their panels' titles)"
            if any(name.startswith("workers") for name in record["scenarios"])
            else ""
        ),
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.975))
    fig.savefig(png_path, dpi=110)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: plot.py RECORD.json OUT.png")
    main(sys.argv[1], sys.argv[2])
