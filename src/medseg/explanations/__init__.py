"""Explanations written for a user: maps of a run's model on input files (`medseg explain`) and the report's
gallery. They stand above inference; the maps themselves are computed in `medseg.explain`, below the methods."""
