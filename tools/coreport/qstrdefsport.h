// qstrs specific to the core-only host port (none beyond auto-collected ones)
