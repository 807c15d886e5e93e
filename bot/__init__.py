"""reclambot: the complaint procedure of a Qualiopi training organisation, run by email."""

__version__ = "0.1.0"
