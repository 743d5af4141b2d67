"""The fidelity suite: calibrated users and honest baselines scored against real held-out behaviour
(import: ``recoworld.fidelity``).

Modules, bottom up: :mod:`.baselines` (the baselines fitted on one time split: popularity by like-rate and
by count, the biased logistic MF, and a registry by which others plug in, SASRec among them, named and
imported on use), :mod:`.lists` (the 1:m lists and the calibrated users' review of them), :mod:`.pick_rules`
(pick rules tuned on the training period), :mod:`.protocols` (preference discrimination, choice from an
exposure list, the held-out period), :mod:`.suite` (the whole suite, its report and its tables).

Fitting users to logs is calibration (``recoworld.users.calibration``, also behind ``recoworld calibrate``);
this package scores it. :mod:`.baselines` sits below the calibration's fit (which reports the held-out
engagement of the same baselines); the other modules above it.

May import: ``recoworld.users.calibration``, ``recoworld.stats``, ``recoworld.progress``, numpy, pandas, pydantic;
never the recommenders (a plug-in is named, not imported), the runner or the env. Nothing is imported here,
so that importing the baselines from the calibration loads nothing else.
"""
