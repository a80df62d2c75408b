"""Running a day: its inputs opened, then in one process (:mod:`.local`) or spread over machines
(:mod:`.distributed`), both ending in the same stages (:mod:`.stages`)."""
