"""File-format adapters. Unit conversions (µm, nm, radians) happen here and nowhere else."""
