"""Semi-automatic segmentation from a seed click: tumour, ablation zone, liver.

- :func:`hepanav.segmentation.tumor.segment_tumor`: tumour on the pre CT (hypo/hyper).
- :func:`hepanav.segmentation.ablation.segment_ablation`: ablation zone on the post CT.
- :func:`hepanav.segmentation.liver.segment_liver`: liver from one click.
- :func:`hepanav.segmentation.pipeline.segment_file`: file in, mask + JSON + report out.

All take SimpleITK images in HU and seeds in LPS mm, and raise
:class:`hepanav.core.InputError` for a seed that cannot be right or a leak.
"""
