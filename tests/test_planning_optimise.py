"""Set-cover optimiser: status wording over restricted pools and time-limit dependence."""

from __future__ import annotations

import numpy as np
from scipy import sparse

from hepanav.planning.candidates import CandidateSet
from hepanav.planning.optimise import greedy_cover, pool_status, reduced_milp_cover


def _tiny_case() -> CandidateSet:
    """4 candidate needles with one zone each over 4 target rows: needle 2 covers all rows,
    needles 0 and 1 two each, needle 3 one (the optimum is needle 2 alone)."""
    cover = np.array(
        [[1, 0, 1, 1], [1, 0, 1, 0], [0, 1, 1, 0], [0, 1, 1, 0]], dtype=bool
    )  # rows x zones
    n = 4
    return CandidateSet(
        entry=np.zeros((n, 3)),
        direction=np.tile([0.0, 1.0, 0.0], (n, 1)),
        direction_id=np.zeros(n, dtype=np.int64),
        zone_line=np.arange(n),
        zone_tip=np.zeros((n, 3)),
        zone_center=np.zeros((n, 3)),
        zone_cost_ml=np.ones(n),
        cover=sparse.csc_matrix(cover),
        rows=np.zeros((4, 3)),
    )


def test_pool_status_does_not_call_a_restricted_optimum_optimal_overall():
    assert pool_status("optimal", "the final needles", 8, 218) == (
        "optimal within the restricted pool of the final needles (8 of 218 candidate "
        "needles); not proven optimal over all 218 candidates"
    )
    # the whole candidate set: optimal overall, no caveat
    assert pool_status("optimal", "the LP-reduced set", 218, 218) == (
        "optimal within the restricted pool of the LP-reduced set (218 of 218 candidate needles)"
    )
    assert "not proven" not in pool_status("time limit, best found (gap 0.26)", "x", 26, 218)


def test_reduced_milp_says_which_pool_and_whether_the_time_limit_shaped_it():
    cand = _tiny_case()
    rows = np.arange(4)
    greedy = greedy_cover(cand, rows, 1, set())
    assert greedy.lines.tolist() == [2]
    sel = reduced_milp_cover(cand, rows, 1, greedy, time_limit_s=60.0)
    assert sel.lines.tolist() == [2]
    assert sel.status == (
        "optimal within the restricted pool of the greedy needles (1 of 4 candidate "
        "needles); not proven optimal over all 4 candidates"
    )
    assert sel.time_limited is False
    # A budget of 0.5 s always leaves stage B (LP-reduced set) out: the result depends on
    # the time limit, whatever the machine.
    short = reduced_milp_cover(cand, rows, 1, greedy, time_limit_s=0.5)
    assert short.lines.tolist() == [2] and short.time_limited is True
