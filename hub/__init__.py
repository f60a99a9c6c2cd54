"""tahub's hub: the service members upload to and (later) query.

Map of the architecture (domain core first; adapters around it)::

    domain core (no web framework, database driver, DuckDB or authlib)
      hub.errors       the one exception tree, mapped to problem+json at the edge
      hub.contracts    data contracts: pydantic models of contracts/*.yaml, the registry
      hub.validation   a contract compiled to one validating SQL query (partner or hub side)
      hub.yamlfile     YAML -> pydantic with file:line errors
    adapters
      hub.rowcheck     runs the validating query in DuckDB (shared with the connector)
      hub.settings     the one settings object (TAHUB_* environment variables)
"""

__version__ = "0.1.0"
