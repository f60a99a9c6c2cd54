"""tahub's partner-side connector (library and the ``tahub-connect`` CLI)."""
