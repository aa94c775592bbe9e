"""A well field's twin: observation wells whose heads are kept per well (keyed state)."""
