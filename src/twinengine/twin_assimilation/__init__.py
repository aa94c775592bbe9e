"""Data assimilation as a twin service: cycles that correct a twin's state from its observations.

``service`` runs cycles (model step in the app's workers, filter from ``twinengine.assimilation``, analysis
written as a state revision), ``api.routes.assimilation`` serves them under ``/twins/{twin}/assimilations``,
``client`` is the SDK's part. The numerics stay in ``twinengine.assimilation``, which knows no twins.
"""
