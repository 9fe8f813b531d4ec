"""Switchyard's gateway shell: HTTP, backends, metering, CLI. The only package that does I/O."""
