"""Embedding models: faces (insightface detector + ArcFace) and voices (GE2E on onnxruntime), loaded lazily."""
