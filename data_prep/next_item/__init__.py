"""Next-item data: interactions (user, item, time) from RecBole, MovieLens, CSV, Parquet or UserBehavior
files, or a synthetic generator, into the processed-dataset layout the trainer reads."""
