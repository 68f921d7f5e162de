"""Release trained weights into models/ and write models/MODEL_CARD.md from the runs' summary.json."""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Iterable

from ..reporting import file_sha256 as sha256_of

__all__ = ["sha256_of", "release_runs", "render_card", "card_checksums"]

DATA_COMMAND = ('for s in "train 40" "val 15" "test 15"; do set -- $s; '
                'gsvnet-synth generate --root data/synth --split $1 --sequences $2 --workers 2; done')
# Keyframe nets: many short scenes (1,200 sequences x 2 frames, train seeds 1000-2199) beat 40 long
# ones, whose 30 correlated frames the net memorises (docs/TRAINING.md); val/test are the standard set's.
KEYFRAME_DATA_COMMAND = ("gsvnet-synth generate --root data/synth_kf --split train --sequences 1200 "
                         "--frames 2 --seed-offset 1000 --workers 2; for d in leftImg8bit_sequence gtFine "
                         "gtFine_sequence; do ln -sfn ../../synth/$d/val data/synth_kf/$d/val; done")
# BiSeNet-R18 propagation nets from its round 3 on: 120 training snippets of 30 frames (seeds 0-119;
# the first 40 are the standard set's, byte for byte), where the 40 alone had shown every round the
# same scenes (docs/TRAINING.md).
PROPAGATION_DATA_COMMAND = ("gsvnet-synth generate --root data/synth_prop --split train --sequences 120 "
                            "--workers 2; for d in leftImg8bit_sequence gtFine gtFine_sequence; do "
                            "ln -sfn ../../synth/$d/val data/synth_prop/$d/val; done")
_ROW = re.compile(r"^\| `(?P<file>[^`]+)` \| (?P<bytes>\d+) \| `(?P<sha>[0-9a-f]{64})` \|$")


def release_runs(run_dirs: Iterable[Path], models_dir: Path) -> list[dict]:
    """Copy each run's weight files into `models_dir` (temp + rename); return their summaries."""
    models_dir.mkdir(parents=True, exist_ok=True)
    released = []
    for run in run_dirs:
        summary = json.loads((Path(run) / "summary.json").read_text())
        for weight in summary["weights"]:
            source, target = Path(run) / weight["file"], models_dir / weight["file"]
            tmp = target.with_name(target.name + ".tmp")
            shutil.copyfile(source, tmp)
            if sha256_of(tmp) != weight["sha256"]:
                tmp.unlink()
                raise RuntimeError(f"{source}: sha256 differs from the run's summary.json")
            os.replace(tmp, target)
        released.append(summary)
    return released


def _metrics(summary: dict) -> str:
    best = summary.get("last_val") or {}
    if summary["mode"] == "keyframe":
        return f"val mIoU {best.get('val_miou', float('nan')):.1f} (per frame, scale 0.75)"
    return (f"val interval 5: average mIoU {best.get('val_avg_miou', float('nan')):.1f}, minimum "
            f"{best.get('val_min_miou', float('nan')):.1f}, keyframe {best.get('val_key_miou', float('nan')):.1f}")


STATUS = ("**Status: interim release.** These weights work end to end but do not reach every accuracy "
          "target of issue #4 yet (see `docs/results.md`); later rounds warm-start from them "
          "(`gsvnet-train keyframe --init-weights ...`, `gsvnet-train propagation --init-weights ...`).")


def _warm_start(summary: dict) -> str:
    config = summary.get("config") or {}
    parts = [f"{label} `{config[key]}`" for key, label in (("init_weights", "warm start from"),
                                                          ("init_backbone", "ResNet-18 trunk from"))
             if config.get(key)]
    return "; ".join(parts)


def _hardware(summary: dict) -> str:
    """Where a run trained: the GPU (runs with --device cuda) or the CPU cores and threads."""
    if summary.get("accelerator"):
        return f"1 {summary['accelerator']} GPU ({summary.get('precision')})"
    return (f"{summary.get('cpu_count')} CPU cores ({summary.get('threads')} threads, "
            f"{summary.get('precision')})")


def _run_lines(summary: dict) -> list[str]:
    files = ", ".join(f"`{w['file']}`" for w in summary["weights"])
    words = list(summary.get("command_line") or ["gsvnet-train", summary["mode"]])
    command = " ".join(words if words[0].endswith("gsvnet-train") else ["gsvnet-train", *words])
    lines = [f"### {files}", "",
             f"- command: `{command}`",
             f"- iterations: {summary['iterations']}; wall time {summary['wall_time_s'] / 60:.1f} min "
             f"on {_hardware(summary)}; seed {summary.get('seed')}; torch {summary.get('torch')}",
             f"- {_metrics(summary)}"]
    if _warm_start(summary):
        lines.append(f"- {_warm_start(summary)}")
    if summary.get("keyframe_weights_sha256"):
        lines.append(f"- frozen keyframe net sha256 `{summary['keyframe_weights_sha256']}`")
    weights = ", ".join(f"`{w['file']}` sha256 `{w['sha256']}`" for w in summary["weights"])
    lines += [f"- produced {weights}", ""]
    return lines


def render_card(summaries: list[dict], models_dir: Path, lineage: Iterable[dict] = (),
                status: str = STATUS) -> str:
    """MODEL_CARD.md text: data and training commands, iterations, wall time, metrics, sha256.

    `lineage`: summaries of earlier runs the released ones warm-started from (listed, not copied).
    """
    lines = ["# Model card (generated by `python -m gsvnet_ros.cli.model_card`)", "",
             "Weights trained by this project's code on its synthetic Cityscapes-style data "
             "(`gsvnet-synth`, 19 Cityscapes trainIds), stored fp16, loaded with "
             "`torch.load(weights_only=True)`. Validation: the synthetic val split (seeds 100000+), "
             "never used in training; the full protocol is in `docs/results.md`.", "", status, "",
             f"Data: `{DATA_COMMAND}` (train seeds 0–39, val 100000–100014, test 200000–200014; "
             "1024×512, 30 frames a snippet, dense labels). Propagation runs with `--data data/synth` train "
             "on its train split.", "",
             f"Propagation-net data (`--data data/synth_prop`): `{PROPAGATION_DATA_COMMAND}` (120 "
             "snippets of 30 frames, train seeds 0–119, of which 0–39 are the standard train split; "
             "the val split is the standard one).", "",
             f"Keyframe-net data (`--data data/synth_kf`): `{KEYFRAME_DATA_COMMAND}` (1,200 short "
             "sequences, train seeds 1000–2199, 2 densely labelled frames each; the val split is the "
             "standard one).", "",
             "| file | bytes | sha256 |", "|---|---|---|"]
    for summary in summaries:
        for weight in summary["weights"]:
            path = models_dir / weight["file"]
            lines.append(f"| `{weight['file']}` | {path.stat().st_size} | `{sha256_of(path)}` |")
    lines += ["", "## Training runs", ""]
    for summary in summaries:
        lines += _run_lines(summary)
    lineage = list(lineage)
    if lineage:
        lines += ["## Earlier runs the ones above warm-started from (weights in the git history)", ""]
        for summary in lineage:
            lines += _run_lines(summary)
    return "\n".join(lines)


def card_checksums(card: Path) -> dict[str, tuple[int, str]]:
    """{file: (bytes, sha256)} from the table of a MODEL_CARD.md."""
    rows = {}
    for line in card.read_text().splitlines():
        match = _ROW.match(line.strip())
        if match:
            rows[match["file"]] = (int(match["bytes"]), match["sha"])
    return rows
