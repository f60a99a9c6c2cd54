"""Queries: a request, checked and charged, run over the bounded rows, released with noise.

::

    hub.query.request       what an analyst asks (the JSON body; domain core)
    hub.query.plan          the immutable QueryPlan an authorised request becomes (core)
    hub.query.authorisation a request against the policies -> a plan, or the refusing rule
                            (deny by default; domain core)
    hub.query.bounds        which rows each unit keeps (its rows of smallest priority)
    hub.query.sql           a plan's SQL: bounding, filters, groups, the parts per cell
    hub.query.engine        QueryEngine: a plan's exact cell aggregates over bounded rows
                            (DuckDB over committed extracts)
    hub.query.release       the cost's split, every mechanism calibrated, the released body:
                            selected or ranked keys, noisy cells, rank intervals, totals
    hub.query.contributions DP quantiles of rows per unit, to size contribution bounds
    hub.query.ledger        the privacy-budget ledger and stored releases (atomic, exact)
    hub.query.answer        a release as stored (zstd) and as each answer sends it, undecoded
    hub.query.service       check, charge, run, release: one DP query end to end
    hub.query.publications  published releases: shared with all or named members, read free
    hub.query.resultfile    a release as a table: Arrow, Parquet or CSV (also the client's)

May import: hub.errors, hub.settings, hub.actors, hub.metrics, hub.contracts, hub.privacy,
hub.storage, hub.governance, hub.ingest, hub.engines
"""
