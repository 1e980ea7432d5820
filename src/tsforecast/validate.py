"""Stage ``validate`` (placeholder until the GX suite lands)."""

VALIDATED_FILE = "data.parquet"
VALIDATED_META = "meta.json"
