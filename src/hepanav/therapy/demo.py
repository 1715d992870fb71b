"""``make demo`` part of hepanav.therapy: evaluate the example vignettes, write reports."""

from __future__ import annotations

from pathlib import Path

EXAMPLES_DIR = Path(__file__).parent / "data" / "examples"


def run(out: Path) -> list[Path]:
    """Evaluate every ``data/examples/*.yaml`` case; write ``out/<case>/therapy.{json,html}``.

    Also writes ``out/dose_check.json``: cisplatin 50 mg/m2 intra-arterial for a
    180 cm / 80 kg patient (Mosteller BSA 2.0 m^2, 100 mg: within the historical 60-100 mg).

    Returns
    -------
    list of Path
        The HTML reports, one per example case.
    """
    from hepanav.core import write_json
    from hepanav.therapy.cases import load_case
    from hepanav.therapy.dose import check_dose
    from hepanav.therapy.engine import evaluate_case
    from hepanav.therapy.report import write_report
    from hepanav.therapy.rules import load_rules

    out = Path(out)
    rules = load_rules()
    reports = []
    for path in sorted(EXAMPLES_DIR.glob("*.yaml")):
        case = load_case(path)
        report = evaluate_case(case, rules)
        write_json(out / path.stem / "therapy.json", report)
        reports.append(write_report(out / path.stem / "therapy.html", case, report))
    write_json(out / "dose_check.json", check_dose("cisplatin", 50, "mg/m2", "IA", 180, 80))
    return reports
