"""MLflow: the register stage, the gate, lineage, the run log, tracking, the pyfunc model."""
