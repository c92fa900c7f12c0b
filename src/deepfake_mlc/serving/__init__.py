"""Serving over the network through NVIDIA Triton Inference Server: model repositories, the local server.

``repository`` writes Triton model repositories (``config.pbtxt``, the model file, its labels) for Triton's
own ONNX Runtime and TensorRT backends (``export --format triton``) and for the local server; ``server``
runs Triton's core (the binary PyTriton bundles) with our runners behind its Python backend
(``deepfake-mlc serve``).
"""
