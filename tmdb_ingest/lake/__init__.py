"""The lake as a whole: its index, its refresh from TMDB's change list, ``--new-only``."""
