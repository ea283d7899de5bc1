"""Data layer: schema, id maps, validated interactions, catalogue, loaders, built-in datasets and splits.

Nothing is imported here: a server that only reads run folders needs the schema and id maps, not the file loaders
and datasets, so each user imports the submodule it needs (`deepshelf.data.interactions`, ...).
"""
