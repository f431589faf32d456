"""Deployment: serving signatures, SavedModel, TFLite/LiteRT, ONNX, the export run with its report, TF Serving clients."""
