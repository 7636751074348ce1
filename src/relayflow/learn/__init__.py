"""The feedback loop: drift detection, retraining jobs, the model/prompt version registry and
model cards. ``import relayflow`` imports none of it; scikit-learn and river load lazily."""
