"""Raw datasets fetched from their publishers and verified by their content (``cdl data fetch``).

Light on purpose: fetching loads no ML framework, so a machine can get its data before the
heavy parts of the toolkit are even importable.
"""
