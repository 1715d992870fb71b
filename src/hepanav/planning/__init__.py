"""hepanav.planning: stereotactic multi-probe ablation planning and placement verification.

``hepanav plan`` chooses straight needle trajectories and ablation positions that cover a
liver tumour plus a safety margin while keeping clearance from no-go structures (a MILP
set cover on a checked candidate set); ``hepanav verify-placement`` finds the needles in a
control CT and reports their target positioning errors. See docs/planning.md.
Research software, not a medical device.
"""
