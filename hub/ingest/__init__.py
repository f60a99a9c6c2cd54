"""Ingest: from an upload's first byte to a committed extract that queries can read.

::

    hub.ingest.staging   resumable upload files (one .part per upload, offset = its size)
    hub.ingest.extracts  an uploaded Parquet file checked again against its contract
    hub.ingest.units     the unit index: compact unit ids, commit-time row numbering and
                         fixed-point columns (the work every query would otherwise repeat)
    hub.ingest.clustered the same checks, numbers and canonical copy as jobs of a cluster
                         (TAHUB_ENGINE=spark), its unit index versioned on shared storage
    hub.ingest.linkage   persons across partners and datasets: units that share an
                         identifier, resolved as connected components at commit
    hub.ingest.service   IngestService: start, append, commit, list and withdraw extracts

May import: hub.errors, hub.settings, hub.actors, hub.metrics, hub.contracts, hub.privacy,
hub.storage, hub.governance, hub.engines
"""
