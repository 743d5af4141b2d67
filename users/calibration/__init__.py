"""Calibrate parametric users to logged interactions and measure their fidelity on held-out data.

Modules: :mod:`.io` (config, results, the calibration file), :mod:`.data` (labels, time split,
sessions, leak-free features and traits), :mod:`.mf` (biased logistic MF, the shared solver),
:mod:`.fit` (the maximum-likelihood fit and its mapping onto the kernel), :mod:`.dynamics` (session
dynamics by simulation), :mod:`.replay` (held-out slates served to any user backend).
"""

from recoworld.users.calibration.data import labels, split_by_time
from recoworld.users.calibration.fit import calibrate, calibrate_dataset
from recoworld.users.calibration.ground_truth import GROUND_TRUTH, write_ground_truth
from recoworld.users.calibration.io import (Calibration, CalibrationConfig, CalibrationResult, DynamicsFit, Fidelity,
                                            FittedWeights, ItemTable, ProfilePool, Replay, calibration_items,
                                            calibration_result, load_calibration, world_sha256)
from recoworld.users.calibration.replay import replay, replay_interactions

__all__ = [
    "GROUND_TRUTH", "Calibration", "CalibrationConfig", "CalibrationResult", "DynamicsFit", "Fidelity", "FittedWeights",
    "ItemTable", "ProfilePool", "Replay", "calibrate", "calibrate_dataset", "calibration_items", "calibration_result",
    "labels", "load_calibration", "replay", "replay_interactions", "split_by_time", "world_sha256", "write_ground_truth",
]
