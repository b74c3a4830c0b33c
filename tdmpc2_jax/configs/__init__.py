"""The run configs of the command lines, `--config=configs/dmc.py:TASK` (host) and
`--config=configs/mjx.py:TASK` (MJX); a `configs/...` path that does not exist where the command
runs is read from here (`cli.resolve_config_path`)."""
