"""Datasets: Cityscapes-sequence and CamVid loaders, paired transforms, contact sheets; synth/ is the
synthetic driving-sequence generator (exact labels and flow)."""
