"""The Train page's session state, each key named once (studio/remembered.py keeps some of them across tabs)."""

from __future__ import annotations

TRAIN_PREFIX = "cfg_"  # the form's fields: cfg_<TrainConfig field>, and PRESET_KEY
PRESET_KEY = TRAIN_PREFIX + "preset"
DEVICE_FIELD_KEY = TRAIN_PREFIX + "device"  # the form's device field (Sketch's device is SketchState.device)
RUN_NAME_KEY = "new_run_name"  # the next run's name
SEEDS_KEY = "new_run_seeds"  # how many seeds the next Start trains

JOB_KEY = "job_id"  # the training job this session is looking at
LOSS_SMOOTHING_KEY = "loss_smoothing"  # the live loss curve's EMA slider
RUN_PICK_KEY = "runs_to_watch"  # prefix of "Your runs"' key (see studio.train_jobs.choose_run_to_watch)
START_ERROR_KEY = "start_error"  # why the last Start was refused by the pool
LINK_PROBLEMS_KEY = "train_link_problems"  # what the link this session was opened with could not set
COMPARE_KEY = "compare_runs"  # the saved runs whose curves are compared
MANAGE_RUN_KEY = "manage_run"  # the saved run the Manage column shows
DELETE_CONFIRM_KEY = "confirm_delete"
DELETE_ERROR_KEY = "delete_error"  # why the last rename or delete was refused
RENAME_KEY = "rename_to"
ENSEMBLE_PICK_KEY = "ensemble_runs"  # the saved runs chosen for a new ensemble
ENSEMBLE_NAME_KEY = "ensemble_name"
ENSEMBLE_RESULT_KEY = "ensemble_result"  # (ok, message) of the last Make the ensemble
