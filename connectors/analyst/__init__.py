"""The member analyst's client: differentially private queries over the pooled data.

::

    connectors.analyst.client  AnalystClient: estimate, query (keys, top, route, bounding,
                               targets), budgets, history, releases
    connectors.analyst.result  what the hub answers: QueryResult (rows, typed records, an
                               honest top list, pandas and Arrow views), QueryEstimate, budgets
    connectors.analyst.display how ``tahub query`` prints a release and an estimate
    connectors.analyst.cli     ``tahub query``, a thin shell over the client

May import: connectors.common, hub.errors, hub.query.resultfile
"""
