"""Semi-automatic segmentation from a seed click: tumour, ablation zone, liver."""
