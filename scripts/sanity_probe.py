"""Run the sanity probe (character.training.sanity) on any model or adapter against its base, and print
the verdict, both NLLs and every probe reply. Nothing is moved or registered: this only measures.

Run: .venv/bin/python scripts/sanity_probe.py CANDIDATE BASE [CANDIDATE BASE ...]
  CANDIDATE: a full model dir or ref, or a LoRA adapter dir (probed on top of BASE)
  e.g. .venv/bin/python scripts/sanity_probe.py artifacts/runs/X/merge/model embedded
"""

from __future__ import annotations

import sys

from character.config import RunConfig
from character.training.sanity import probe


def main(args: list[str]) -> None:
    if not args or len(args) % 2:
        raise SystemExit(__doc__)
    cfg = RunConfig()
    cfg.backend.device = "auto"
    for cand, base in zip(args[::2], args[1::2], strict=True):
        r = probe(cand, base_ref=base, cfg=cfg)
        print(f"== {cand} vs {base}: {'passed' if r.passed else 'FAILED'} in {r.seconds:.1f} s")
        print(
            f"   NLL {r.nll_candidate:.4f} vs base {r.nll_base:.4f} (x{r.nll_ratio:.3f}), new defects {r.new_defects}"
        )
        for x in r.replies:
            print(f"   {x['prompt']!r}")
            print(f"      base {x['base_defects']} {x['base'][:90]!r}")
            print(f"      cand {x['candidate_defects']} {x['candidate'][:90]!r}")
        for reason in r.reasons:
            print(f"   reason: {reason}")


if __name__ == "__main__":
    main(sys.argv[1:])
