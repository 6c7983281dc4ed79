"""Compile stage: model package -> ONNX graphs (fp32, fp16) -> FP16 TensorRT engines, verified."""
