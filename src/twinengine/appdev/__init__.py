"""What a DT developer's tools do with an app folder, in the engine's process: scaffold a new app from a
template (``scaffold``, ``twin app new``), check and test it against an in-process engine (``harness``,
``twin app test``), run it locally (``local``, ``twin app run``), and check its imports in its environment
(``imports``). It sits on top of everything it drives; what app code itself imports is ``twinengine.app``.
"""
