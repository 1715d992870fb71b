"""hepanav.margin: ablation-margin verification by image fusion.

Signed distances (mm) from the tumour surface to the ablation-zone surface on
sub-voxel surfaces in physical space, the figures derived from them (MAM,
percentiles, surface fractions, shell coverage, category, short regions,
subcapsular exclusion), and the pre -> post registration that brings the tumour
into the post-ablation space. Entry points: ``hepanav margin`` (commands.py),
:func:`hepanav.margin.pipeline.run_margin`, :func:`hepanav.margin.measure.measure_margin`,
:func:`hepanav.margin.registration.register_pre_to_post`. See docs/margin.md.
"""
