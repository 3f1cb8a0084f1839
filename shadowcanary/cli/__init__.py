"""The front door: the ``shadowcanary`` command, one module per command group.

``main`` mounts every group on the root typer app (the console script's ``main``);
``support`` holds what every command shares (error style, exit codes, the migrated
database). Commands import what they need when they run.
"""
