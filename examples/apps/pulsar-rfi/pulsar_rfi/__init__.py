"""pulsar-rfi: a twin of a radio telescope's filterbank stream that flags interference and folds a pulsar."""
