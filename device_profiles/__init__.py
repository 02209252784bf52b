"""Built-in device profiles: one TOML file per hardware target (package data)."""
