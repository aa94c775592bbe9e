"""virgo-glitch: a noise twin of an interferometer's strain channel and nine auxiliary channels."""
