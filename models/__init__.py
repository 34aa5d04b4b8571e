"""The models: MDAF (models/mdaf/), the next-item models (models/next_item/), the baselines they are
compared against (models/baselines/), the sequence layers both tasks share (models/ssm/) and the
layers every model shares (models/layers/), all reading batches of data_prep.loader."""
