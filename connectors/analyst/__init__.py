"""The member analyst's client: differentially private queries over the pooled data.

::

    connectors.analyst.client  AnalystClient: estimate, query, budgets, history, releases;
                               QueryResult with pandas and Arrow views
    connectors.analyst.cli     ``tahub query``, a thin shell over the client

May import: connectors.common, hub.errors, hub.query.resultfile
"""
