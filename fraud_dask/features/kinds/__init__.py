"""Feature kinds: one module each, owning its spec, plan entry, maths and description.

=====================  ========================  =============================================
config group           module                    operation
=====================  ========================  =============================================
``calendar``           :mod:`.calendar`          :class:`~.calendar.Calendar` (row)
``windows``            :mod:`.window`            :class:`~.window.Window`
``risk``               :mod:`.risk`              :class:`~.risk.Risk`
``recency``            :mod:`.recency`           :class:`~.recency.Recency`
``amount_relative``    :mod:`.relative`          :class:`~.relative.Relative`
``frequency``          :mod:`.frequency`         :class:`~.window.Window` (a count)
``target_encoding``    :mod:`.target_encoding`   :class:`~.target_encoding.TargetEncoding`
``amount_median``      :mod:`.median`            :class:`~.median.AmountMedian`
``fraud_history``      :mod:`.fraud_history`     :class:`~.fraud_history.FraudHistory`
=====================  ========================  =============================================

The contract is in :mod:`.base`. A kind is registered by its field in
:class:`~fraud_dask.features.config.FeaturesConf` (the config group; the field order is the plan
order); docs/architecture.md walks through adding one.
"""
