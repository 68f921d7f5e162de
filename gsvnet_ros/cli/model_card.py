"""Copy trained weights from run folders into models/ and regenerate models/MODEL_CARD.md."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from ..model_card import release_runs, render_card


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gsvnet_ros.cli.model_card", description=__doc__)
    parser.add_argument("runs", nargs="+", type=Path, help="run folders with summary.json")
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    args = parser.parse_args(argv)
    summaries = release_runs(args.runs, args.models_dir)
    card = args.models_dir / "MODEL_CARD.md"
    tmp = card.with_name(card.name + ".tmp")
    tmp.write_text(render_card(summaries, args.models_dir))
    tmp.replace(card)
    print(f"wrote {card} ({sum(len(s['weights']) for s in summaries)} weight files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
