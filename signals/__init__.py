"""Partner batches in, validated signals out: the lowest domain layer."""
