"""The synthetic Cityscapes-style driving-sequence generator (`gsvnet-synth`): a street scene
(layout, ground, vehicles, agents), a moving camera, rendering with exact labels and backward flow,
sensor post-processing, and the writer of the Cityscapes folder layout."""
