"""Robustness evaluation: does the persona hold when someone pushes? (paper-method 2.2-2.4)

Modules: `suffixes` (the "stop role-playing" variants), `prefill` (turn 1 by the base model),
`drift` (a neutral multi-turn conversation), `classifier` (persona vs base, held-out split),
`scoring` (macro-F1, accuracy, persona share, bootstrap intervals), `replies` (resumable generation),
`plan` (which model writes what, and the scored sets), `coherence` (the order-swapped judge),
`suite` (the evaluation end to end), `stage` (the eval stage's hook: DPO-only vs full), `report`
(the table, the F1-per-variant plot and the run report's section).

`character eval robustness --checkpoint C --persona P` runs it on demand; the pipeline's eval stage
writes `eval/robustness.json` for the final and the DPO-only model.
"""
