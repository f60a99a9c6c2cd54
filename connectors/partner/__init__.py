"""The partner's connector: an export in, a checked and pseudonymised extract uploaded.

::

    connectors.partner.sources       read an export: CSV, Parquet, Excel, SQLite, a SQL query
    connectors.partner.csvsource     CSV read tolerantly: encoding and delimiter detected, a
                                     bad line one rejected row with its line number
    connectors.partner.mapping       the mapping file: dataset, source, fields, ignore
    connectors.partner.fieldmapping  one field's typed parser and its options
    connectors.partner.rates         currencies: minor units, exchange-rate table files
    connectors.partner.recode        category values to codes (recode, fold), once per value
    connectors.partner.convert       every field parsed in one SQL pass (__parsed)
    connectors.partner.checking      the hub's checks, run once per distinct value
    connectors.partner.tokens        identifiers normalised and hashed once per spelling
    connectors.partner.pseudonymise  identifiers normalised and keyed with the network key
    connectors.partner.magnitude     amounts 100 times too large caught before upload
    connectors.partner.leftovers     columns no field takes: listed, sampled, flagged
    connectors.partner.masking       no identifier-shaped value in any report
    connectors.partner.rejects       the rejects file and the first rejects
    connectors.partner.limits        memory, threads, spill folder, batch size, input ceilings
    connectors.partner.pipeline      prepare_extract(): read, parse, check, pseudonymise, write
    connectors.partner.preview       check_export(): how a mapping reads an export
    connectors.partner.suggest       suggest_mapping(): a mapping proposed from a sample
    connectors.partner.template      mapping_template(): a commented mapping to fill in
    connectors.partner.extract       the deterministic zstd Parquet extract
    connectors.partner.report        what was prepared: counts, reasons, columns left behind
    connectors.partner.client        HubClient: resumable, idempotent uploads; list, withdraw
    connectors.partner.display       how the command line prints reports
    connectors.partner.cli           ``tahub-connect``, a thin shell over the above

May import: connectors.common, hub (its version), hub.errors, hub.yamlfile, hub.contracts
"""
