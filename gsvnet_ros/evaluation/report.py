"""Write the evaluation results as JSON, a markdown page of tables, and an accuracy–throughput plot."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

from ..labels import CLASS_NAMES

__all__ = ["write_json", "write_markdown", "write_atomic", "render_markdown", "plot_accuracy_throughput"]


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, then rename: complete or absent."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_json(results: dict, path: Path) -> None:
    write_atomic(path, json.dumps(results, indent=1, default=float))


def write_markdown(results: dict, command: str, path: Path) -> None:
    write_atomic(path, render_markdown(results, command))


def _pct(value: Any) -> str:
    return "–" if value is None or value != value else f"{100 * value:.1f}"


def _main_table(rows: list[dict]) -> list[str]:
    lines = ["| method | input scale | interval l | avg mIoU | min mIoU | ms/frame | frames/s | GMAC/frame |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        if row.get("variant", "GSVNet") != "GSVNet":
            continue
        gmac = f"{row['gmac_per_frame']:.2f}" if "gmac_per_frame" in row else "–"
        lines.append(f"| {row['method']} | {row['scale']} | {row['interval']} | {_pct(row['average_miou'])} "
                     f"| {_pct(row.get('minimum_miou'))} | {row['ms_per_frame']:.1f} | {row['fps']:.1f} "
                     f"| {gmac} |")
    return lines


def _ablation_table(rows: list[dict]) -> list[str]:
    lines = ["| keyframe net | variant | avg mIoU (l=5) | min mIoU (l=5) |", "|---|---|---|---|"]
    for row in rows:
        if "variant" in row and row["interval"] == max(r["interval"] for r in rows if "variant" in r):
            lines.append(f"| {row['keyframe_net']} | {row['variant']} | {_pct(row['average_miou'])} "
                         f"| {_pct(row['minimum_miou'])} |")
    return lines


def _complexity_table(gsvnet: dict) -> list[str]:
    lines = ["| model | keyframe params | non-keyframe params | keyframe GMAC | non-keyframe GMAC "
             "| keyframe ms | non-keyframe ms | non-key / key |", "|---|---|---|---|---|---|---|---|"]
    for name, fig in gsvnet.items():
        p, g = fig["parameters"], fig["gmacs"]
        lines.append(f"| {name} | {p['keyframe'] / 1e6:.2f} M | {p['non_keyframe'] / 1e6:.3f} M "
                     f"| {g['keyframe']:.2f} | {g['non_keyframe']:.3f} | {fig['keyframe_ms']:.1f} "
                     f"| {fig['non_keyframe_ms']:.1f} | {100 * fig['non_keyframe_share']:.1f} % |")
    return lines


def _distance_table(gsvnet: dict) -> list[str]:
    names = list(gsvnet)
    distances = sorted({int(d) for fig in gsvnet.values() for d in fig["miou_by_distance"]})
    lines = ["| distance from keyframe | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for d in distances:
        cells = [_pct(gsvnet[n]["miou_by_distance"].get(d, gsvnet[n]["miou_by_distance"].get(str(d))))
                 for n in names]
        lines.append(f"| {d} | " + " | ".join(cells) + " |")
    return lines


def _class_table(rows: list[dict]) -> list[str]:
    chosen = [r for r in rows if r["interval"] in (1, 4) and r.get("variant", "GSVNet") == "GSVNet"
              and r["scale"] == 0.75]
    lines = ["| class | " + " | ".join(f"{r['method']} l={r['interval']}" for r in chosen) + " |",
             "|---" * (len(chosen) + 1) + "|"]
    for c, name in enumerate(CLASS_NAMES):
        lines.append(f"| {name} | " + " | ".join(_pct(r["per_class_iou"][c]) for r in chosen) + " |")
    return lines


def _row(rows: list[dict], net: str, scale: float, interval: int, variant: Optional[str]) -> Optional[dict]:
    for row in rows:
        if (row["keyframe_net"] == net and row["scale"] == scale and row["interval"] == interval
                and row.get("variant") == variant):
            return row
    return None


def target_checks(results: dict) -> list[tuple[str, str, str, Optional[bool]]]:
    """(keyframe net, target, measured, met) for the targets of issues #4 and #5, from one run.

    met is None where this run lacks a figure (a scale or variant that was not evaluated).
    """
    rows, checks = results["rows"], []
    nets = list(dict.fromkeys(r["keyframe_net"] for r in rows))
    ablation = next((r["variant"] for r in rows if r.get("variant") not in (None, "GSVNet")
                     and "intra" in r["variant"]), None)  # the no-phi ablation (Table 4)
    for net in nets:
        per_frame = {s: _row(rows, net, s, 1, None) for s in (0.75, 0.5)}
        gsv = {l: _row(rows, net, 0.75, l, "GSVNet") for l in (4, 5)}
        no_phi = _row(rows, net, 0.75, 5, ablation) if ablation else None
        fig = results["gsvnet"].get(net)
        pf = per_frame[0.75]["average_miou"] if per_frame[0.75] else None

        def add(target: str, measured: Optional[str], ok: Optional[bool]) -> None:
            checks.append((net, target, measured or "not evaluated", None if measured is None else ok))

        add("per-frame mIoU at scale 0.75 >= 70", None if pf is None else _pct(pf),
            pf is not None and pf >= 0.70)
        if gsv[5] and pf is not None:
            add("l=5 average mIoU >= per-frame(0.75) - 3.0",
                f"{_pct(gsv[5]['average_miou'])} vs {_pct(pf - 0.03)}", gsv[5]["average_miou"] >= pf - 0.03)
            add("l=5 minimum mIoU >= per-frame(0.75) - 6.0",
                f"{_pct(gsv[5]['minimum_miou'])} vs {_pct(pf - 0.06)}", gsv[5]["minimum_miou"] >= pf - 0.06)
        else:
            add("l=5 average / minimum mIoU vs per-frame(0.75)", None, None)
        if gsv[5] and no_phi:
            gain = gsv[5]["minimum_miou"] - no_phi["minimum_miou"]
            add("intra features: l=5 minimum mIoU gain >= 1.5", f"{100 * gain:+.1f}", gain >= 0.015)
        else:
            add("intra features: l=5 minimum mIoU gain >= 1.5", None, None)
        if fig:
            add("non-keyframe time <= 8 % of a keyframe", f"{100 * fig['non_keyframe_share']:.1f} %",
                fig["non_keyframe_share"] <= 0.08)
        if gsv[4] and per_frame[0.75]:
            ratio = gsv[4]["fps"] / per_frame[0.75]["fps"]
            add("l=4 frames/s >= 3.0x per-frame at 0.75", f"{ratio:.2f}x", ratio >= 3.0)
        if gsv[4] and per_frame[0.5]:
            better = gsv[4]["average_miou"] > per_frame[0.5]["average_miou"]
            faster = gsv[4]["fps"] >= per_frame[0.5]["fps"]
            add("headline: l=4 (0.75) more accurate than per-frame 0.5, at least as fast",
                f"{_pct(gsv[4]['average_miou'])} vs {_pct(per_frame[0.5]['average_miou'])} mIoU, "
                f"{gsv[4]['fps']:.1f} vs {per_frame[0.5]['fps']:.1f} frames/s", better and faster)
    return checks


def _targets_table(results: dict) -> list[str]:
    lines = ["| keyframe net | target | measured | met |", "|---|---|---|---|"]
    for net, target, measured, ok in target_checks(results):
        lines.append(f"| {net} | {target} | {measured} | {'–' if ok is None else ('yes' if ok else 'no')} |")
    return lines


def render_markdown(results: dict, command: str) -> str:
    """The results page: every table is generated from `results`, nothing typed by hand."""
    height, width = results["size"]
    parts = [
        "# Results (generated by `gsvnet-eval`; do not edit by hand)", "",
        f"Command: `{command}`", "",
        f"Data: {results['snippets']} snippets of {width}×{height}, protocol of MODEL_SPEC.md "
        "(keyframe at frame 19−i, propagated i steps, frame 19 scored; average mIoU pools offsets "
        "0..l−1, minimum mIoU is offset l−1). Timings: end to end from an RGB frame in memory to "
        f"full-resolution labels, median after warm-up; {results.get('machine', 'this machine')}.", "",
        "## Targets (issues #4 and #5), from this run", "", *_targets_table(results), "",
        "## Accuracy and throughput (Table 1, Fig. A5)", "", *_main_table(results["rows"]), "",
        "![accuracy vs throughput](accuracy_throughput.png)", "",
        "## Complexity (Table 2)", "", *_complexity_table(results["gsvnet"]), "",
        "## Ablations: intra features (Table 4), learned kernels (Table A5)", "",
        *_ablation_table(results["rows"]), "",
        "## mIoU by distance from the keyframe", "", *_distance_table(results["gsvnet"]), "",
        "## Per-class IoU", "", *_class_table(results["rows"]), "",
        "## Where the time goes (median ms per stage)", "",
    ]
    for name, fig in results["gsvnet"].items():
        key = ", ".join(f"{k} {v:.1f}" for k, v in fig["keyframe_stages_ms"].items())
        non = ", ".join(f"{k} {v:.1f}" for k, v in fig["non_keyframe_stages_ms"].items())
        parts += [f"- {name} ({fig['backend']}): keyframe: {key}; non-keyframe: {non}"]
    return "\n".join(parts) + "\n"


def plot_accuracy_throughput(results: dict, path: Path) -> None:
    """mIoU against frames/s: image baselines by input scale, GSVNet by interval (cf. Fig. A5)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    series: dict[str, list[dict]] = {}
    for row in results["rows"]:
        if row.get("variant", "GSVNet") == "GSVNet":
            series.setdefault(row["method"], []).append(row)
    for name, rows in series.items():
        rows = sorted(rows, key=lambda r: r["fps"])
        ax.plot([r["fps"] for r in rows], [100 * r["average_miou"] for r in rows], "o-", label=name)
        for r in rows:
            tag = f"l={r['interval']}" if name.startswith("GSVNet") else f"{r['scale']}"
            ax.annotate(tag, (r["fps"], 100 * r["average_miou"]), fontsize=7,
                        textcoords="offset points", xytext=(3, 3))
    ax.set_xlabel(f"frames/s ({results['threads']} CPU threads, end to end)")
    ax.set_ylabel("average mIoU (%)")
    ax.set_title("Accuracy vs throughput on the synthetic val split")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, path)
