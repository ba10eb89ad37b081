"""HTTP routes: thin controllers that decode, call the engine, encode."""
