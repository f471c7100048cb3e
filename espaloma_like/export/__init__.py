"""Writers: ParameterSet -> openmm.System, System XML, ForceField XML, template generator."""
