"""Tabular datasets on a node: a CSV or Parquet file with a declared schema, usable like a view.

:mod:`.schema` (the YAML declaration), :mod:`.loader` (file to typed DataFrame, schema enforced),
:mod:`.registry` (named datasets under the node's data directory).
"""
