"""Monitoring of registered models: the training reference a bundle carries, drift of the score
and of every input per client and period (PSI, Jensen-Shannon), the alert rate at the bundle's
thresholds, performance as labels mature, the rules that raise alerts, and ``monitor.html``.

| module | holds |
| --- | --- |
| ``config.py`` | ``MonitorConf`` (the ``monitor`` group), ``PeriodFreq``; no dask import |
| ``drift.py`` | the binning rule, per-partition bin counts, PSI, Jensen-Shannon, p-values |
| ``reference.py`` | ``build_reference`` (at registration), the ``reference.json`` format |
| ``run.py`` | ``monitor_scores``: every table in one ``dask.compute``, then the measures |
| ``rules.py`` | which measures become alerts (``fire``) |
| ``report.py`` | ``monitor.html`` |
"""
