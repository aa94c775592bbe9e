"""CWL application packages, in and out: packages run through cwltool in a sandboxed worker (never in the engine
process), their inputs staged from the lake and their outputs kept as the run's results; an app's openEO
workflow exported as an OGC EO Application Package."""
