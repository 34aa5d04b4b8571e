"""The models: MDAF (models/mdaf/), the baselines it is compared against (models/baselines/) and
the layers every model shares (models/layers/), all reading batches of data_prep.loader."""
