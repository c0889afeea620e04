"""The web service (`likeness-audit serve`): actor portal and auditor REST API over the same store."""
