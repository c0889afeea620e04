"""The log wing: the hash-chained audit log (auditlog), the MACs and pseudonyms that seal it and the sample rows
(seals), and the redaction of a removed person from it (redaction)."""
