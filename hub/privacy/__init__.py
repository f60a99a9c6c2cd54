"""Differential privacy: exact amounts, sensitivities, OpenDP noise, honest intervals.

Domain core: plain Python values in, plain values out; it imports OpenDP and nothing of the
web, the database or DuckDB. The query engine computes exact cell values over the bounded
rows and hands them here; this package decides how much noise a cost buys, adds it with
OpenDP's own measurements and says how far the answer may be from the truth.

::

    hub.privacy.accounting  exact privacy amounts (rho / epsilon as fractions), limits
    hub.privacy.budget      the budget rules: may this charge go through, what is left
    hub.privacy.noise       sensitivities (derived in docstrings), calibration of a cost to
                            an OpenDP scale, release of counts, fixed-point sums, quantiles
    hub.privacy.intervals   95% intervals, means, consistent margin totals, the cost a target
                            accuracy needs, the (epsilon, delta) a rho implies
    hub.privacy.selection   which keys to show (OpenDP's thresholds over distinct units) and
                            which come first (OpenDP's noisy top-k), rank intervals

The privacy argument, with its reasons, is in ``docs/privacy.md``. In short:

* Neighbouring datasets differ by one privacy unit with all its rows at all partners.
* Each unit keeps at most ``max_rows`` (= m) rows **in total** (its rows of smallest keyed
  priority, fixed at commit; a unit's kept rows never depend on another unit's rows), or m
  per period for trends.
* Group keys of small grids are public: every cell is released, zeros included, so the
  released object is a fixed-length vector and its sensitivity is a vector norm. Large grids
  release keys selected by a DP threshold (approximate DP: a delta).
* ``zcdp`` costs (rho) buy discrete Gaussian noise, ``pure`` costs (epsilon) discrete Laplace
  noise, both from OpenDP over ``Vec<i64>``; quantiles use OpenDP's exponential mechanism.
* Every scale is checked against the OpenDP measurement's privacy map at the derived
  sensitivity before it is returned and again before any noise is drawn.

A typical count::

    sens = sensitivity("count", max_rows=10)
    noise = calibrate(Cost.parse("zcdp", "1/100"), sens)
    cells = estimates(release_counts(exact_cells, noise), noise, nonnegative=True)

May import: hub.errors
"""
