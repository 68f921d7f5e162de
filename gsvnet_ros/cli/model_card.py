"""Copy trained weights from run folders into models/ and regenerate models/MODEL_CARD.md."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional, Sequence

from ..evaluation.model_card import STATUS, release_runs, render_card


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gsvnet_ros.cli.model_card", description=__doc__)
    parser.add_argument("runs", nargs="+", type=Path, help="run folders with summary.json")
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--lineage", nargs="*", type=Path, default=[],
                        help="earlier run folders the released runs warm-started from (listed, not copied)")
    parser.add_argument("--status", help="status paragraph (default: the interim-release text)")
    args = parser.parse_args(argv)
    summaries = release_runs(args.runs, args.models_dir)
    lineage = [json.loads((run / "summary.json").read_text()) for run in args.lineage]
    card = args.models_dir / "MODEL_CARD.md"
    tmp = card.with_name(card.name + ".tmp")
    tmp.write_text(render_card(summaries, args.models_dir, lineage, args.status or STATUS))
    tmp.replace(card)
    print(f"wrote {card} ({sum(len(s['weights']) for s in summaries)} weight files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
