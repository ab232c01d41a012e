//! Model metadata: safetensors headers, GGUF key/value strings, ONNX metadata, `.npy` headers.
