"""The statistics' old address: they live in :mod:`recoworld.stats`, below every layer that uses them
(users, recommenders, reports). Kept only for the modules that still import them from here while
other work rewrites them (calibration and fidelity, the tasks); new code imports ``recoworld.stats``."""

from recoworld.stats import (  # noqa: F401
    auc,
    bootstrap_groups,
    calibration_curve,
    histogram,
    jensen_shannon,
    km_curves,
    log_edges,
    log_loss,
    mean_interval,
    percentile_interval,
    resampled_means,
    resampled_sums,
    sample_jsd,
)
