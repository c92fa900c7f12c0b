"""serve-bench: a model in every runtime the machine has — accuracy against PyTorch, latency, throughput.

Modules: ``timing`` (latency percentiles, throughput), ``machine`` (what the figures depend on),
``accuracy`` (metrics and parity, judged by :mod:`deepfake_mlc.metrics.parity`, export's quality gate),
``artifacts`` (the file each runtime reads, made by export's own writer),
``serve_bench`` (the run), ``load`` (``--server``: a closed-loop load test of a Triton / KServe v2 server),
``tables`` (tables, JSON), ``figure`` (the PNG, where matplotlib is); and ``evaluation`` and ``robustness``
(``evaluate`` in any runtime, under degradations).
Nothing is imported here so that the command line can list the runtimes without loading PyTorch; an
ONNX model or an engine is benchmarked without PyTorch at all (the serving image has none).
"""
