"""Synthetic Taobao data: the raw Tianchi files, written from a latent model with known truth.

`generate_taobao_ad` writes Tianchi 56's five files (plus raw_sample_oracle.csv, the true click
probability of each impression); `generate_userbehavior` writes Tianchi 649's UserBehavior.csv
(plus UserBehavior_oracle.csv, each view's true conversion probability). Same seed, same bytes,
whatever the chunk size.
"""
from data_prep.synthetic.config import SyntheticConfig, load_synthetic_config
from data_prep.synthetic.taobao_ad import generate_taobao_ad
from data_prep.synthetic.userbehavior import generate_userbehavior

__all__ = ["SyntheticConfig", "generate_taobao_ad", "generate_userbehavior",
           "load_synthetic_config"]
