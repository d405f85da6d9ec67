"""Genetic analysis of the multimodal model (paper section 3, Table 2) and the report.

* :mod:`.gradcam` -- attribution: Grad-CAM of the matching score, per-patch top genes, Table 2 occurrence;
* :mod:`.validation` -- scoring against the embedded cohort's planted truth, permutation null;
* :mod:`.enrichment` -- hypergeometric gene-set enrichment (GMT files), Benjamini-Hochberg;
* :mod:`.survival` -- lineage clusters, Kaplan-Meier and log-rank (statsmodels);
* :mod:`.report` -- figures and the self-contained HTML report.
"""
