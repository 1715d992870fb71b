"""Controlled vocabularies of the registry (the codes a spreadsheet may use).

Sources: resection margin R0 >= 1 mm, R1 < 1 mm (unspecified, parenchymal or vascular
(detached from a major vessel, Vigano 2016)), R2 macroscopic residual; ablation
margin categories after the MAM literature (incomplete < 0 mm, 0-5, 5-10,
>= 10 mm; Laimer 2025, Shady 2018); complications Clavien-Dindo (surgery),
CIRSE 1-6 (interventional, Filippiadis 2017), CTCAE v5 grades 1-5; follow-up
terms after Ahmed 2014 (standardisation of image-guided tumour ablation).
See ../shared/docs/domain.md.
"""

from __future__ import annotations

SEXES = ("F", "M", "X")
PRIMARY_TYPES = ("CRC", "NET", "HCC", "other")
NET_GRADES = ("G1", "G2", "G3")
PROCEDURE_TYPES = ("resection", "ablation", "TAE", "TACE", "TARE", "HAI", "PRRT", "systemic")
APPROACHES = ("open", "laparoscopic", "robotic", "percutaneous", "endovascular", "systemic")
ABLATION_ENERGIES = ("RFA", "MWA", "cryo", "IRE", "laser", "other")
# "R1" unspecified is what most registries record; statistics count every R1
# code (R1, R1_parenchymal, R1_vascular) as positive (not R0).
MARGIN_STATUSES = ("R0", "R1", "R1_parenchymal", "R1_vascular", "R2")
R1_STATUSES = ("R1", "R1_parenchymal", "R1_vascular")
NEGATIVE_MARGIN = "R0"
# R0 means a margin of at least 1 mm (domain brief, "Resection margins").
R0_MIN_MARGIN_MM = 1.0
MARGIN_CATEGORIES = ("incomplete", "0-5mm", "5-10mm", ">=10mm")
# What kind of bound a MAM is (hepanav margin's ``min_margin_bound``, docs/margin.md
# "Border"): 'lower' = the zone is cut by the image border where the MAM is reached
# (the true MAM may be LARGER); 'upper' = part of the tumour lies outside the image
# (the true MAM may be SMALLER); 'unknown' = both. No value (NULL) = a measurement,
# or a MAM of unknown provenance (typed in, an older margin.json).
MAM_BOUNDS = ("lower", "upper", "unknown")
SEGMENTS = ("1", "2", "3", "4", "4a", "4b", "5", "6", "7", "8")
EVENT_TYPES = (
    "local_progression",
    "intrahepatic_recurrence",
    "extrahepatic_recurrence",
    "death",
    "last_contact",
)
COMPLICATION_SYSTEMS = ("clavien_dindo", "cirse", "ctcae")
GRADES = {
    "clavien_dindo": ("I", "II", "IIIa", "IIIb", "IVa", "IVb", "V"),
    "cirse": ("1", "2", "3", "4", "5", "6"),
    "ctcae": ("1", "2", "3", "4", "5"),
}

# Covariates margin studies adjust for (issue 15): RAS/BRAF mutation status of
# the primary (CRC), how the margin was confirmed after ablation (software
# co-registration vs visual side-by-side reading; Laimer 2025, COVER-ALL), ASA
# physical status I-VI (American Society of Anesthesiologists).
RAS_STATUSES = ("wild_type", "mutant")
BRAF_STATUSES = ("wild_type", "V600E", "other_mutant")
MARGIN_CONFIRMATIONS = ("software", "visual")
ASA_CLASSES = (1, 6)
