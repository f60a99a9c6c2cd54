"""Open-source and public collection: incidents from news and from the public.

The hub's members share structured extracts; the intelligence they value is also drawn from
what is public. This package gathers it, one folder per step::

    hub.osint.tagging      text -> suggested tags of the shared taxonomy (HTCDS exploitation
                           types, ISO 3166 countries with their route role, recruitment,
                           transport, control, age, gender, the incident's month), each with
                           a confidence and the sentence that supports it; local rules and
                           gazetteers only, nothing downloaded at run time

    hub.osint.dedup        near-duplicate texts (MinHash LSH): the same incident told twice
    hub.osint.collection   Collection.add: an article or report becomes an item of an
                           incident (new, or one more source), tagged, a report sealed
    hub.osint.sealing      Sealer: crowd reports' text encrypted at rest, opened for reviewers
    hub.osint.challenges   proof of work for crowd reports: signed, expiring challenges
    hub.osint.reports      crowd reports from the public: checked, sealed, opened for
                           reviewers only, purged after review (retention)
    hub.osint.sources      news feeds and folders: configured, fetched politely on a
                           schedule (feedparser, trafilatura, httpx), each fetch recorded
    hub.osint.review       the reviewers' queue: claims that expire, the incident with its
                           texts and merged suggestions, accept | correct | reject | merge
    hub.osint.coding       coded tags checked against the contracts' domains; suggestions
                           merged across an incident's items
    hub.osint.precision    per-tag precision of the suggestions, from the decisions
    hub.osint.incidents    the reviewed incidents published as the ``incidents`` dataset

hub.osint.tagging is domain core: it imports only hub.errors and hub.yamlfile, and no
database, web framework or network library.

May import: hub.errors, hub.yamlfile, hub.settings, hub.actors, hub.metrics, hub.contracts,
hub.storage, hub.governance, hub.identity, hub.ingest
"""
