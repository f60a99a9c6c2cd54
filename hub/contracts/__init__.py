"""Data contracts: what a dataset is, and how one of its rows is checked, on both sides.

::

    hub.contracts.model          pydantic models of contracts/*.yaml; the ContractRegistry
    hub.contracts.validation     a contract compiled to one validating SQL query
    hub.contracts.rowcheck       runs that query in DuckDB (the connector and the hub alike)
    hub.contracts.extractformat  the Parquet schema and metadata of an extract

The partner's connector imports this package too: it must stay free of the hub's service
parts. ``model`` and ``validation`` are domain core (no DuckDB, web or database).

May import: hub.errors, hub.yamlfile
"""
