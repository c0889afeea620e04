"""The index wing: segmented FAISS indexes (segments), their large-gallery bases (pqbase, ivfbase), search over
them (search) and the check of their contents against the registry (contents)."""
