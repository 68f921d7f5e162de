"""Evaluation and benchmarking: the paper's protocol (protocol), experiment runs (runs) and their
reports (report), the flow oracle, real-motion measurements, the speed bench (bench) and the release
model card (model_card). Sits above training and the stream; only cli/ imports it."""
