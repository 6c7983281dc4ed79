"""The tensor names of every ONNX graph and TensorRT plan in a model package.

Part of the package format: `compile` writes graphs with these names and the runtime
backends look them up, so both import them from here.
"""

INPUT_NAME = "image"  # (N, 3, H, W) float32 in [-1, 1]
OUTPUT_NAME = "translated"  # the same shape and range
