"""The partner's connector: an export in, a checked and pseudonymised extract uploaded.

::

    connectors.partner.sources       read an export: CSV, Parquet, Excel, SQLite, a SQL query
    connectors.partner.mapping       the mapping file: which column feeds which contract field
    connectors.partner.pipeline      prepare_extract(): map, recode, validate, pseudonymise
    connectors.partner.pseudonymise  identifiers normalised and keyed with the network key
    connectors.partner.extract       the deterministic zstd Parquet extract
    connectors.partner.report        what was prepared: counts, rejects, dropped columns
    connectors.partner.client        HubClient: resumable, idempotent uploads; list, withdraw
    connectors.partner.cli           ``tahub-connect``, a thin shell over the above

May import: connectors.common, hub (its version), hub.errors, hub.yamlfile, hub.contracts
"""
