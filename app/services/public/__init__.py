"""Residents and the public: what anyone but staff sees of a case, residents' own steps, Open311."""
